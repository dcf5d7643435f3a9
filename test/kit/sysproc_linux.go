package kit

import "syscall"

// sysProcAttr puts a child in its own process group, so that a terminal's ^C reaches only the
// test (which then stops it), and has the kernel kill it when the test binary dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
