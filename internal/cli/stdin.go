package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/d8da9184/opstate/internal/persist"
)

// maxValue is the longest value set reads from standard input: the most
// bytes SQLite stores in a row (persist.MaxLength), beyond which the
// value could only be refused once read whole. PostgreSQL's text holds at
// most 1 GiB, a little more. Tests lower it.
var maxValue int64 = persist.MaxLength

// readValue reads r to its end and returns what it read, or fails once it
// has read more than limit bytes, having read limit+1 at most. A regular
// file longer than limit from where r stands is refused before any of it
// is read.
func readValue(r io.Reader, limit int64) (string, error) {
	tooLong := fmt.Errorf("value longer than %d bytes, the most opstate stores (SQLite's limit on a row)", limit)
	var b strings.Builder
	if f, ok := r.(*os.File); ok {
		if left, ok := fileLeft(f); ok {
			if left > limit {
				return "", tooLong
			}
			b.Grow(int(left))
		}
	}
	n, err := io.Copy(&b, io.LimitReader(r, limit+1))
	switch {
	case err != nil:
		return "", err
	case n > limit:
		return "", tooLong
	}
	return b.String(), nil
}

// fileLeft returns how many bytes f, a regular file, holds past its
// offset; ok is false for anything else (a pipe, a terminal).
func fileLeft(f *os.File) (left int64, ok bool) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, false
	}
	return max(fi.Size()-pos, 0), true
}
