package container

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Logs follows a container's output (`podman logs -f`, standard output and
// error together) so that a test can wait for a line instead of sleeping.
type Logs struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the follower has read everything

	mu      sync.Mutex // protects lines and changed
	lines   []string
	changed chan struct{} // closed and replaced at each new line
}

// FollowLogs starts following the logs of the container name. It follows
// until the container stops or ctx ends.
func FollowLogs(ctx context.Context, name string) (*Logs, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	l := &Logs{name: name, done: make(chan struct{}), changed: make(chan struct{})}
	l.cmd = exec.CommandContext(ctx, "podman", "logs", "-f", name)
	l.cmd.Stdout, l.cmd.Stderr = w, w
	if err := l.cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	go func() {
		defer close(l.done)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
		_ = l.cmd.Wait()
	}()
	return l, nil
}

// WaitFor waits for a line for which match is true and returns it. It fails
// when ctx ends or the container's output ends first.
func (l *Logs) WaitFor(ctx context.Context, what string, match func(line string) bool) (string, error) {
	seen := 0
	for {
		l.mu.Lock()
		lines, changed := l.lines, l.changed
		l.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if match(lines[seen]) {
				return lines[seen], nil
			}
		}
		select {
		case <-changed:
		case <-l.done:
			// Lines read just before the end.
			l.mu.Lock()
			lines = l.lines
			l.mu.Unlock()
			for ; seen < len(lines); seen++ {
				if match(lines[seen]) {
					return lines[seen], nil
				}
			}
			return "", fmt.Errorf("%s: its output ended without %s:\n%s", l.name, what, l.String())
		case <-ctx.Done():
			return "", fmt.Errorf("%s: no %s: %w\n%s", l.name, what, ctx.Err(), l.String())
		}
	}
}

// String is the output followed so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// Msg matches a log line of the agent whose message is msg, in slog's text
// (msg=ready, msg="prefetch done") or JSON ("msg":"ready") form.
func Msg(msg string) func(line string) bool {
	quoted := fmt.Sprintf("%q", msg)
	return func(line string) bool {
		return strings.Contains(line, "msg="+msg+" ") || strings.HasSuffix(line, "msg="+msg) ||
			strings.Contains(line, "msg="+quoted) || strings.Contains(line, `"msg":`+quoted)
	}
}

// Since returns the lines after the first n, and the count so far (the n
// of the next call).
func (l *Logs) Since(n int) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n > len(l.lines) {
		n = len(l.lines)
	}
	return append([]string(nil), l.lines[n:]...), len(l.lines)
}
