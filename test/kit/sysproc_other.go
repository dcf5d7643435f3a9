//go:build unix && !linux

package kit

import "syscall"

// sysProcAttr puts a child in its own process group, so that a terminal's ^C reaches only the
// test, which then stops it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
