package persist

import (
	"errors"
	"reflect"
	"strings"

	"modernc.org/sqlite"
)

// SQLite's result codes, which every driver reports in its own error type:
// modernc.org/sqlite's *sqlite.Error, github.com/mattn/go-sqlite3's
// sqlite3.Error (fields Code and ExtendedCode), and
// github.com/ncruces/go-sqlite3's *sqlite3.Error (methods Code and
// ExtendedCode). No type is shared, so that a DB over an application's own
// pool ([OpenDB]) reads the code by the names the drivers agree on.

// sqliteCode returns the SQLite result code an error of err's chain
// carries, extended where the driver reports it, and whether one does. It
// runs only on errors, never on a statement that succeeded.
func sqliteCode(err error) (int, bool) {
	if err == nil {
		return 0, false // before errors.As, whose target would escape
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	code, found := 0, false
	visit(err, func(e error) bool {
		code, found = codeOf(e)
		return found
	})
	return code, found
}

// visit calls f on err and on every error it wraps, depth first, until f
// returns true.
func visit(err error, f func(error) bool) bool {
	for err != nil {
		if f(err) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if visit(e, f) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// codeOf returns the code of an error whose type has a method or a field
// named ExtendedCode, or else Code, of an integer type, and that says it
// comes from SQLite by its package path.
func codeOf(e error) (int, bool) {
	v := reflect.ValueOf(e)
	t := v.Type()
	if !fromSQLite(t) {
		return 0, false
	}
	for _, name := range []string{"ExtendedCode", "Code"} {
		if m := v.MethodByName(name); m.IsValid() && m.Type().NumIn() == 0 && m.Type().NumOut() == 1 {
			if n, ok := integer(m.Call(nil)[0]); ok && n != 0 {
				return n, true
			}
		}
		s := v
		if s.Kind() == reflect.Pointer {
			if s.IsNil() {
				return 0, false
			}
			s = s.Elem()
		}
		if s.Kind() == reflect.Struct {
			if f := s.FieldByName(name); f.IsValid() {
				if n, ok := integer(f); ok && n != 0 {
					return n, true
				}
			}
		}
	}
	return 0, false
}

// fromSQLite reports whether t, or what it points to, is defined in a
// package whose path names SQLite: the drivers' error types are.
func fromSQLite(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return strings.Contains(strings.ToLower(t.PkgPath()), "sqlite")
}

// integer returns v's value if it is an integer.
func integer(v reflect.Value) (int, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int(v.Uint()), true
	}
	return 0, false
}
