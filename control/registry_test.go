package control

import (
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestRegistry: a backend's flags are parsed with the rest, its maker is
// the one --backend names, and an unknown name or a second registration
// of a name is refused.
func TestRegistry(t *testing.T) {
	made := ""
	Register(Registration{Name: "registry-test", Flags: func(fs *flag.FlagSet) NewBackend {
		word := fs.String("registry-test-word", "", "")
		return func(Options) (Backend, error) { made = *word; return nil, nil }
	}})
	defer func() {
		registryMu.Lock()
		delete(registry, "registry-test")
		registryMu.Unlock()
	}()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	mk := BackendFlags(fs)
	if err := fs.Parse([]string{"--registry-test-word", "hello"}); err != nil {
		t.Fatal(err)
	}
	if _, err := mk("registry-test", Options{}); err != nil || made != "hello" {
		t.Fatalf("made %q, %v", made, err)
	}
	_, err := mk("nope", Options{})
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), `invalid backend "nope": want `) || !strings.Contains(err.Error(), "registry-test") {
		t.Fatalf("unknown backend: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second registration of a name did not panic")
		}
	}()
	Register(Registration{Name: "registry-test", Flags: func(*flag.FlagSet) NewBackend { return nil }})
}

func TestOrList(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want string
	}{{nil, ""}, {[]string{"a"}, "a"}, {[]string{"a", "b"}, "a or b"}, {[]string{"a", "b", "c"}, "a, b or c"}} {
		if got := orList(tt.in); got != tt.want {
			t.Errorf("orList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
