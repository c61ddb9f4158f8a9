package pty

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Open opens a pseudo-terminal pair. It returns the master, the slave's
// device path (which a program opens like a UART) and the descriptor of
// the slave held open in raw mode; CloseFD closes it.
func Open() (master *os.File, slave string, slaveFD int, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", -1, fmt.Errorf("pty: open ptmx: %w", err)
	}
	rc, err := master.SyscallConn()
	if err != nil {
		master.Close()
		return nil, "", -1, err
	}
	var n uint32
	var ierr error
	// Control, not Fd: Fd would put the master in blocking mode and
	// break read deadlines.
	err = rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr != nil {
			return
		}
		n, ierr = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN)
	})
	if err == nil {
		err = ierr
	}
	if err != nil {
		master.Close()
		return nil, "", -1, fmt.Errorf("pty: unlock: %w", err)
	}
	slave = "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	slaveFD, err = unix.Open(slave, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, "", -1, fmt.Errorf("pty: open %s: %w", slave, err)
	}
	t, err := unix.IoctlGetTermios(slaveFD, unix.TCGETS)
	if err == nil {
		// cfmakeraw: no echo, no line editing, no CR/LF translation.
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		err = unix.IoctlSetTermios(slaveFD, unix.TCSETS, t)
	}
	if err != nil {
		unix.Close(slaveFD)
		master.Close()
		return nil, "", -1, fmt.Errorf("pty: raw mode on %s: %w", slave, err)
	}
	return master, slave, slaveFD, nil
}

// CloseFD closes the slave descriptor Open returned.
func CloseFD(fd int) { unix.Close(fd) }
