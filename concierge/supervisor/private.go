package supervisor

import (
	"fmt"
	"os"
)

// PrivateDir creates dir (and its parents) if needed and makes it 0700:
// the directories of program files and task logs hold secrets.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// WritePrivate writes b to path with mode 0600, also when the file exists
// with a wider mode.
func WritePrivate(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// PrivateFile creates path empty with mode 0600 if it does not exist, and
// makes it 0600 if it does: supervisord then appends to it and keeps the
// mode (both flavors open an existing log file for appending).
func PrivateFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
