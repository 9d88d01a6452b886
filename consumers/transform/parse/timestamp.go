package parse

import "time"

// Timestamp parses s when it is an RFC 3339 / ISO 8601 date or
// date-time and returns it in microseconds since the Unix epoch, UTC:
//
//	YYYY-MM-DD
//	YYYY-MM-DD(T|t| )hh:mm[:ss[.fraction]][Z|z|±hh:mm|±hhmm|±hh]
//
// A date alone is midnight UTC; a date-time without a zone is taken as UTC.
// A fraction keeps at most 6 digits (microseconds); more are truncated. A
// leap second (:60) is the first instant of the next minute. The year is
// 0000 to 9999.
func Timestamp(s string) (int64, bool) {
	if len(s) < 10 || len(s) > 40 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) {
		return 0, false
	}
	var hour, minute, sec, micros, offset int
	rest := s[10:]
	if rest != "" {
		if c := rest[0]; c != 'T' && c != 't' && c != ' ' {
			return 0, false
		}
		rest = rest[1:]
		if len(rest) < 5 || rest[2] != ':' {
			return 0, false
		}
		var ok1, ok2 bool
		hour, ok1 = digits(rest[0:2])
		minute, ok2 = digits(rest[3:5])
		if !ok1 || !ok2 || hour > 23 || minute > 59 {
			return 0, false
		}
		rest = rest[5:]
		if len(rest) >= 3 && rest[0] == ':' {
			var ok bool
			if sec, ok = digits(rest[1:3]); !ok || sec > 60 {
				return 0, false
			}
			rest = rest[3:]
			if len(rest) >= 2 && (rest[0] == '.' || rest[0] == ',') {
				n := 1
				for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
					if n <= 6 {
						micros = micros*10 + int(rest[n]-'0')
					}
					n++
				}
				if n == 1 {
					return 0, false
				}
				for k := n; k <= 6; k++ {
					micros *= 10
				}
				rest = rest[n:]
			}
		}
		switch {
		case rest == "":
		case rest == "Z" || rest == "z":
		case rest[0] == '+' || rest[0] == '-':
			z := rest[1:]
			var h, m int
			var ok bool
			switch len(z) {
			case 2:
				h, ok = digits(z)
			case 4:
				var ok2 bool
				h, ok = digits(z[0:2])
				m, ok2 = digits(z[2:4])
				ok = ok && ok2
			case 5:
				var ok2 bool
				h, ok = digits(z[0:2])
				m, ok2 = digits(z[3:5])
				ok = ok && ok2 && z[2] == ':'
			}
			if !ok || h > 23 || m > 59 {
				return 0, false
			}
			offset = h*3600 + m*60
			if rest[0] == '-' {
				offset = -offset
			}
		default:
			return 0, false
		}
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	return (t.Unix()-int64(offset))*1_000_000 + int64(micros), true
}

// digits parses s, all ASCII digits, as a decimal number.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + int(d)
	}
	return n, true
}

// daysIn returns the number of days in month of year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
