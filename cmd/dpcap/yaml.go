package main

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// writeYAML writes v as block YAML from its typed values: counters stay
// integers (a trip through JSON's float64 printed 1.234567e+06), keys are
// the JSON names, in field order, with omitempty and omitzero honoured, so
// -o yaml and -o json show the same fields.
func writeYAML(w io.Writer, v any) error {
	var b strings.Builder
	yamlMapping(&b, reflect.ValueOf(v), 0)
	_, err := io.WriteString(w, b.String())
	return err
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

// yamlMapping writes a struct's fields or a map's entries at indent.
func yamlMapping(b *strings.Builder, v reflect.Value, indent int) {
	pad := strings.Repeat("  ", indent)
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if hasOpt(opts, "omitempty") && isEmptyValue(fv) || hasOpt(opts, "omitzero") && isZeroValue(fv) {
				continue
			}
			yamlEntry(b, pad+name+":", fv, indent)
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			yamlEntry(b, pad+yamlString(fmt.Sprint(k))+":", v.MapIndex(k), indent)
		}
	}
}

// yamlEntry writes one key's (or list item's) value after prefix.
func yamlEntry(b *strings.Builder, prefix string, v reflect.Value, indent int) {
	for (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && !v.IsNil() && !v.Type().Implements(textMarshaler) {
		v = v.Elem()
	}
	if s, ok := yamlScalar(v); ok {
		fmt.Fprintf(b, "%s %s\n", prefix, s)
		return
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			fmt.Fprintf(b, "%s []\n", prefix)
			return
		}
		b.WriteString(prefix + "\n")
		pad := strings.Repeat("  ", indent+1)
		for i := range v.Len() {
			// A mapping item starts on the dash's line: "- name: vm-1".
			var item strings.Builder
			yamlEntry(&item, pad+"-", v.Index(i), indent+1)
			s := item.String()
			if rest, ok := strings.CutPrefix(s, pad+"-\n"+pad+"  "); ok {
				s = pad + "- " + rest
			}
			b.WriteString(s)
		}
	default: // struct, map
		if v.Kind() == reflect.Map && v.Len() == 0 {
			fmt.Fprintf(b, "%s {}\n", prefix)
			return
		}
		b.WriteString(prefix + "\n")
		yamlMapping(b, v, indent+1)
	}
}

// yamlScalar renders v when it is a scalar.
func yamlScalar(v reflect.Value) (string, bool) {
	if v.Type().Implements(textMarshaler) && (v.Kind() != reflect.Pointer || !v.IsNil()) {
		t, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return yamlString(err.Error()), true
		}
		return yamlString(string(t)), true
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return "null", v.IsNil()
	case reflect.String:
		return yamlString(v.String()), true
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(v.Uint(), 10), true
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, v.Type().Bits()), true
	}
	return "", false
}

// yamlString quotes s: a JSON string is a valid double-quoted YAML scalar,
// and quoting keeps "yes", "1e3" or ": " from being read as anything else.
func yamlString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(buf.String(), "\n")
}

func hasOpt(opts, name string) bool { return slices.Contains(strings.Split(opts, ","), name) }

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return isZeroValue(v) && v.Kind() != reflect.Struct
}

// isZeroValue is encoding/json's omitzero test: IsZero() when the type has
// it, the zero value otherwise.
func isZeroValue(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		return (v.Kind() == reflect.Pointer && v.IsNil()) || z.IsZero()
	}
	return v.IsZero()
}
