//go:build !unix

package readertest

// lockFile does nothing where flock is missing: concurrent installs then
// each run npm install, and the rename into place still keeps node_modules whole.
func lockFile(path string) (func(), error) {
	return func() {}, nil
}
