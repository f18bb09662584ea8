package persist

import "testing"

// TestMountPointIn reads mount points out of mountinfo lines as the kernel
// writes them, octal escapes included, and finds only whole fifth fields.
func TestMountPointIn(t *testing.T) {
	const info = `21 26 0:20 / /proc rw,relatime - proc proc rw
26 1 254:0 / / rw,relatime - ext4 /dev/vda rw
44 26 254:0 /srv/a/state.db /data/state.db rw,relatime - ext4 /dev/vda rw
45 26 254:0 /srv/a /data/dir\040with\011odd\012names\134 rw,relatime shared:7 - ext4 /dev/vda rw
46 26 0:50 / /data/octal\0401\777\12 rw - tmpfs tmpfs rw
47 26 0:51 / /last/line rw - tmpfs tmpfs rw`
	tests := []struct {
		paths []string
		want  string
	}{
		{[]string{"/data/state.db"}, "/data/state.db"},
		{[]string{"/data/state.db-wal", "/data/state.db"}, "/data/state.db"},
		{[]string{"/data/state.db-wal", "/data/state.db-shm"}, ""},
		{[]string{"/data"}, ""},                      // a prefix of a mount point
		{[]string{"/srv/a/state.db"}, ""},            // the root field, not a mount point
		{[]string{"/data/state.db rw,relatime"}, ""}, // fields are separated by spaces
		{[]string{"/data/dir with\todd\nnames\\"}, "/data/dir with\todd\nnames\\"},
		{[]string{`/data/dir\040with\011odd\012names\134`}, ""}, // as written, escaped
		// Only a backslash and three octal digits up to \377 is an escape.
		{[]string{"/data/octal 1\\777\\12"}, "/data/octal 1\\777\\12"},
		{[]string{"/last/line"}, "/last/line"}, // no newline at the end
		{[]string{"/"}, "/"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := mountPointIn([]byte(info), tt.paths...); got != tt.want {
			t.Errorf("mountPointIn(%q) = %q; want %q", tt.paths, got, tt.want)
		}
	}
	for _, info := range []string{"", "\n", "short line\n", "1 2 3 4\n", "1 2 3 4 \n"} {
		if got := mountPointIn([]byte(info), "/"); got != "" {
			t.Errorf("mountPointIn(%q, \"/\") = %q; want \"\"", info, got)
		}
	}
}
