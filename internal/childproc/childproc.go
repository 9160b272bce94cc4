// Package childproc starts child processes that die with the process that
// started them, however it ends: a test run that fails, times out, or is
// killed with SIGKILL must not leave brokers or S3 servers running.
//
// On Linux every child is started with Pdeathsig = SIGKILL
// (prctl PR_SET_PDEATHSIG). The kernel sends that signal when the *thread*
// that forked the child exits, not the process, and the Go runtime does end
// threads: a goroutine that exits while locked to its thread
// (runtime.LockOSThread) takes the thread with it, and any goroutine may have
// been scheduled on that thread earlier and forked from it. So all children
// are forked from one goroutine that locks its thread and never returns:
// that thread lives exactly as long as the process. Pdeathsig survives
// execve, so a child started as `bash -c '…; exec strata'` keeps it.
// Elsewhere Start is cmd.Start.
package childproc
