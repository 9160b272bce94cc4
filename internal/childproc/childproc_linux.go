package childproc

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// starts carries every Start to the forking goroutine.
var (
	startForker sync.Once
	starts      = make(chan startRequest)
)

type startRequest struct {
	cmd    *exec.Cmd
	result chan<- error
}

// Start starts cmd (as cmd.Start does) so that the kernel kills it with
// SIGKILL when this process dies. It sets cmd.SysProcAttr.Pdeathsig and may
// be called from any goroutine; the caller waits for cmd as usual.
func Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	startForker.Do(func() { go forker() })
	result := make(chan error, 1)
	starts <- startRequest{cmd: cmd, result: result}
	return <-result
}

// forker performs every Start on its own OS thread. It runs for the life of
// the process on purpose (its thread must not exit before the children do),
// so it has no owner to stop it.
func forker() {
	runtime.LockOSThread() // never unlocked: see the package doc
	for request := range starts {
		request.result <- request.cmd.Start()
	}
}
