//go:build unix

package persist

import (
	"io/fs"
	"syscall"
)

// hardLinks returns the number of names fi's file has, or 1 when the
// system does not say.
func hardLinks(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
