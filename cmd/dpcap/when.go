package main

import (
	"fmt"
	"strings"
	"time"
)

// parseWhen reads a point in time as an operator types it.
func parseWhen(v string, now time.Time) (time.Time, error) {
	if v == "now" {
		return now, nil
	}
	if strings.HasPrefix(v, "-") {
		d, err := time.ParseDuration(v[1:])
		if err != nil || d <= 0 {
			return time.Time{}, fmt.Errorf("invalid time %q: a duration before now is -15m, -2h", v)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, now.Location()); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"15:04:05.999999999", "15:04"} {
		if t, err := time.ParseInLocation(layout, v, now.Location()); err == nil {
			y, m, d := now.Date()
			return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), now.Location()), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 (2026-11-23T10:02:00Z), 2026-11-23 10:02, 10:02, -15m or now", v)
}
