//go:build !linux

package persist

// sidecars watches nothing: only Linux lists a process's descriptors
// (/proc/self/fd), and elsewhere another SQLite library goes unseen.
type sidecars struct{}

// openSidecars returns nothing to watch.
func openSidecars(string) (*sidecars, string) { return nil, "" }

func (*sidecars) quick() string { return "" }

func (*sidecars) full() string { return "" }

func (*sidecars) lockCheck() string { return "" }

func (*sidecars) pathCheck() string { return "" }

func (*sidecars) close() {}
