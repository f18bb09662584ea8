package persist

import "os"

// mountPoint returns the first of paths, each absolute and free of
// symbolic links, at which something is mounted in this process's view of
// the file systems, or "" if none is. It returns "" too when the list of
// mounts cannot be read (no /proc): then it cannot tell. The stat of a
// path cannot: a file bind-mounted from the file system of its directory
// has the device number of its directory.
func mountPoint(paths ...string) string {
	b, err := os.ReadFile(mountInfoPath)
	if err != nil {
		return ""
	}
	return mountPointIn(b, paths...)
}
