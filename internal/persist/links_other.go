//go:build !unix

package persist

import (
	"errors"
	"io/fs"
)

// hardLinks returns 1: this system's file information does not count names.
func hardLinks(fs.FileInfo) uint64 { return 1 }

// mknodRegular fails with errors.ErrUnsupported: createFile then links a
// temporary file into place.
func mknodRegular(string, uint32) error { return errors.ErrUnsupported }
