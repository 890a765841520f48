package pcapout

import (
	"strconv"
	"time"
)

// strftime expands the C strftime conversions tcpdump users put in -G file
// names. Unknown conversions are kept as written.
func strftime(format string, t time.Time) string {
	out := make([]byte, 0, len(format)+16)
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			out = append(out, c)
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			out = strconv.AppendInt(out, int64(t.Year()), 10)
		case 'y':
			out = pad2(out, t.Year()%100)
		case 'm':
			out = pad2(out, int(t.Month()))
		case 'd':
			out = pad2(out, t.Day())
		case 'e':
			if t.Day() < 10 {
				out = append(out, ' ')
			}
			out = strconv.AppendInt(out, int64(t.Day()), 10)
		case 'H':
			out = pad2(out, t.Hour())
		case 'I':
			out = pad2(out, (t.Hour()+11)%12+1)
		case 'M':
			out = pad2(out, t.Minute())
		case 'S':
			out = pad2(out, t.Second())
		case 'p':
			out = t.AppendFormat(out, "PM")
		case 'j':
			out = append(out, byte('0'+t.YearDay()/100), byte('0'+t.YearDay()/10%10), byte('0'+t.YearDay()%10))
		case 's':
			out = strconv.AppendInt(out, t.Unix(), 10)
		case 'a':
			out = t.AppendFormat(out, "Mon")
		case 'A':
			out = t.AppendFormat(out, "Monday")
		case 'b', 'h':
			out = t.AppendFormat(out, "Jan")
		case 'B':
			out = t.AppendFormat(out, "January")
		case 'u':
			out = strconv.AppendInt(out, int64((int(t.Weekday())+6)%7+1), 10)
		case 'w':
			out = strconv.AppendInt(out, int64(t.Weekday()), 10)
		case 'F':
			out = t.AppendFormat(out, "2006-01-02")
		case 'T':
			out = t.AppendFormat(out, "15:04:05")
		case 'R':
			out = t.AppendFormat(out, "15:04")
		case 'D':
			out = t.AppendFormat(out, "01/02/06")
		case 'z':
			out = t.AppendFormat(out, "-0700")
		case 'Z':
			out = t.AppendFormat(out, "MST")
		case '%':
			out = append(out, '%')
		default:
			out = append(out, '%', format[i])
		}
	}
	return string(out)
}

func pad2(b []byte, v int) []byte { return append(b, byte('0'+v/10%10), byte('0'+v%10)) }

// hasConversion reports whether format contains any time conversion, so that
// -G without one (which overwrites the same file) can be warned about.
func hasConversion(format string) bool {
	t1 := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	return strftime(format, t1) != strftime(format, t1.Add(367*24*time.Hour+time.Hour+time.Minute+time.Second))
}
