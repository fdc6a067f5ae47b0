//go:build !unix

package learned

import "os"

// openInbox opens an inbox file for reading; a symlink is refused
// (errNotRegular). Without O_NOFOLLOW the check and the open are two
// steps: the server is built for Linux, where open_unix.go does it in one.
func openInbox(path string) (*os.File, error) {
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		return nil, errNotRegular
	}
	return os.Open(path)
}
