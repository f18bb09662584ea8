package persist

import "bytes"

// mountInfoPath is Linux's list of the mounts this process sees.
const mountInfoPath = "/proc/self/mountinfo"

// mountPointIn returns the first of paths that mountinfo, the text of a
// Linux /proc/PID/mountinfo, lists as a mount point, or "" if none is.
// Each line of mountinfo describes one mount; its fifth field, separated
// by spaces, is where it is mounted, relative to the process's root, with
// a space, tab, newline or backslash in it written as an octal escape
// (\040, \011, \012, \134).
func mountPointIn(mountinfo []byte, paths ...string) string {
	for line := range bytes.Lines(mountinfo) {
		field := mountPointField(line)
		if bytes.IndexByte(field, '\\') >= 0 {
			field = unescapeOctal(field)
		}
		for _, p := range paths {
			if string(field) == p {
				return p
			}
		}
	}
	return ""
}

// mountPointField returns the fifth space-separated field of a mountinfo
// line, as it is written there, or nil if the line has fewer.
func mountPointField(line []byte) []byte {
	rest := line
	for range 4 {
		var ok bool
		if _, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
			return nil
		}
	}
	field, _, _ := bytes.Cut(bytes.TrimRight(rest, "\n"), []byte{' '})
	return field
}

// unescapeOctal returns s with each backslash followed by three octal
// digits (at most \377) replaced by the byte they give, as the kernel
// writes the characters it escapes in mount points; any other backslash
// is kept.
func unescapeOctal(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && '0' <= s[i+1] && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
			continue
		}
		out = append(out, s[i])
	}
	return out
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
