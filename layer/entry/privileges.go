package entry

import (
	"fmt"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Privileges is what the entry gives up before it execs the image's
// program.
type Privileges struct {
	// User, when set, is who the program runs as: the entry was started
	// as root only so that it could mount.
	User *User
	// DropSysAdmin removes CAP_SYS_ADMIN from the bounding, inheritable,
	// permitted, effective and ambient sets, so that neither the program
	// nor anything it execs (setuid-root binaries and file capabilities
	// included: the bounding set masks them) can mount, whatever user it
	// runs as.
	DropSysAdmin bool
}

// ExecAs applies p, then execs c. Capability sets are per thread, so both
// happen on one locked thread, which never returns to the pool: on failure
// the caller exits. It returns only on failure, with an *Error.
func ExecAs(c Command, p Privileges) error {
	runtime.LockOSThread()
	if err := p.apply(); err != nil {
		return &Error{Code: exitCannotRun, Err: err}
	}
	return Exec(c)
}

// apply drops the capability before it switches users: the bounding set
// can only be changed with CAP_SETPCAP, which root loses with setuid.
func (p Privileges) apply() error {
	if p.DropSysAdmin {
		if err := dropSysAdmin(); err != nil {
			return err
		}
	}
	if p.User != nil {
		if err := switchUser(*p.User); err != nil {
			return err
		}
	}
	return nil
}

// dropSysAdmin removes CAP_SYS_ADMIN from every set of the calling thread.
// The bounding set is what makes it stick: exec computes the new permitted
// set through it, for root and for setuid-root binaries alike.
func dropSysAdmin() error {
	// Dropping needs CAP_SETPCAP even when there is nothing to drop.
	in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, unix.CAP_SYS_ADMIN, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("read the bounding set: %w", err)
	}
	if in == 1 {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, unix.CAP_SYS_ADMIN, 0, 0, 0); err != nil {
			return fmt.Errorf("drop CAP_SYS_ADMIN from the bounding set: %w", err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // capabilities 0-31, then 32-63
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	// The kernel keeps the ambient set within permitted and inheritable:
	// clearing those clears it.
	const bit = 1 << unix.CAP_SYS_ADMIN // < 32: in data[0]
	data[0].Effective &^= bit
	data[0].Permitted &^= bit
	data[0].Inheritable &^= bit
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop CAP_SYS_ADMIN from the thread's sets: %w", err)
	}
	return nil
}

// switchUser sets the groups, then the gid, then the uid: each step needs
// a privilege the next one takes away. Go applies them to every thread.
// Leaving uid 0 clears the permitted and effective capabilities (no
// SECBIT_KEEP_CAPS is set), so the program starts with none.
func switchUser(u User) error {
	// An empty list clears the groups root had; it never keeps them.
	if err := syscall.Setgroups(u.Groups); err != nil {
		return fmt.Errorf("set the supplementary groups %v: %w", u.Groups, err)
	}
	if err := syscall.Setgid(u.GID); err != nil {
		return fmt.Errorf("set gid %d: %w", u.GID, err)
	}
	if err := syscall.Setuid(u.UID); err != nil {
		return fmt.Errorf("set uid %d: %w", u.UID, err)
	}
	return nil
}
