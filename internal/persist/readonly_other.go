//go:build !linux

package persist

// readOnlyCause returns "": only on Linux does this package look at the
// file system for the cause of a read-only database.
func readOnlyCause(string) string { return "" }
