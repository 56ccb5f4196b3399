package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/tower-reg/tower-reg/daemon/fetch"
	"github.com/tower-reg/tower-reg/daemon/runfile"
	"github.com/tower-reg/tower-reg/daemon/token"
)

const tokenUsage = `Usage: towerreg-dev token [flags] IMAGE

Ask the running daemon for a container token: a short-lived name that pulls
IMAGE with the given layers and config changes. Prints the daemon's JSON
answer; on a terminal, also a ready 'docker run' line.

Flags:
`

// tokenFlags is what the command line asks for.
type tokenFlags struct {
	addr       string
	addrFrom   string // where addr came from, for the error
	configPath string
	image      string
	layerFiles []string
	entrypoint []string
	cmd        []string
	env        []string
	workdir    string
}

func tokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	tf, err := parseTokenFlags(args, stderr)
	if err != nil {
		return err
	}
	if tf.addr, tf.addrFrom, err = daemonAddr(ctx, tf.addr, tf.configPath, runfile.Path()); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	return requestToken(ctx, tf, stdout, stderr, isTerminal(stdout))
}

func parseTokenFlags(args []string, stderr io.Writer) (tokenFlags, error) {
	var tf tokenFlags
	fl := flag.NewFlagSet("token", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), tokenUsage)
		fl.PrintDefaults()
	}
	fl.StringVar(&tf.addr, "addr", "", addrHelp)
	fl.StringVar(&tf.configPath, "config", "", "config file whose listen names the daemon (default $XDG_CONFIG_HOME/towerreg/config.yml)")
	fl.Func("layer", "layer JSON `FILE` as printed by 'towerreg-dev pack' (repeatable, in order)", func(s string) error {
		tf.layerFiles = append(tf.layerFiles, s)
		return nil
	})
	fl.Func("entrypoint", "entrypoint: a JSON array, or a single program", func(s string) (err error) {
		tf.entrypoint, err = parseCommand(s)
		return err
	})
	fl.Func("cmd", "cmd: a JSON array, or a single argument", func(s string) (err error) {
		tf.cmd, err = parseCommand(s)
		return err
	})
	fl.Func("env", "environment variable `K=V` to add (repeatable)", func(s string) error {
		tf.env = append(tf.env, s)
		return nil
	})
	fl.StringVar(&tf.workdir, "workdir", "", "working directory (absolute)")
	// Flags may follow the image too, as in 'token busybox --env A=1'.
	var rest []string
	for {
		if err := fl.Parse(args); err != nil {
			return tokenFlags{}, err
		}
		if fl.NArg() == 0 {
			break
		}
		rest = append(rest, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if len(rest) != 1 {
		fl.Usage()
		return tokenFlags{}, fmt.Errorf("token: want one IMAGE, got %d arguments", len(rest))
	}
	tf.image = rest[0]
	return tf, nil
}

// parseCommand takes the JSON array form of Dockerfile's exec form, or one
// plain string as a single-element list.
func parseCommand(s string) ([]string, error) {
	if !strings.HasPrefix(strings.TrimSpace(s), "[") {
		if s == "" {
			return nil, errors.New("empty; give a program or a JSON array")
		}
		return []string{s}, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("not a JSON array of strings: %v", err)
	}
	return out, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (tf tokenFlags) request() ([]byte, error) {
	req := token.Request{ContainerImage: tf.image}
	cfg := token.ContainerConfig{Entrypoint: tf.entrypoint, Cmd: tf.cmd, Env: tf.env, WorkingDir: tf.workdir}
	for _, name := range tf.layerFiles {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("--layer: %w", err)
		}
		// Not strict: pack may print more than these four fields.
		var l fetch.Layer
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("--layer %s: not the JSON that 'towerreg-dev pack' prints: %v", name, err)
		}
		cfg.Layers = append(cfg.Layers, l)
	}
	if len(cfg.Layers) > 0 || cfg.Entrypoint != nil || cfg.Cmd != nil || cfg.Env != nil || cfg.WorkingDir != "" {
		req.ContainerConfig = &cfg
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	// The daemon's own check, run here first so that a typo is named by
	// its flag before anything is sent.
	if _, err := token.DecodeRequest(bytes.NewReader(body)); err != nil {
		var fe *token.FieldError
		if errors.As(err, &fe) {
			for i, name := range tf.layerFiles {
				if strings.HasPrefix(fe.Field, fmt.Sprintf("containerConfig.layers[%d]", i)) {
					return nil, fmt.Errorf("--layer %s: %w", name, err)
				}
			}
		}
		return nil, err
	}
	return body, nil
}

func requestToken(ctx context.Context, tf tokenFlags, stdout, stderr io.Writer, tty bool) error {
	body, err := tf.request()
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	base := tf.addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/container-token", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("token: --addr %q: %w", tf.addr, err)
	}
	req.Header.Set("Content-Type", "application/json")
	// No timeout but ctx: the daemon fetches every layer before it answers,
	// which takes as long as the layers are big.
	client := &http.Client{}
	resp, err := client.Do(req)
	if err != nil {
		if tf.addrFrom == "" {
			tf.addrFrom = "--addr"
		}
		return unreachable("token", tf.addr, tf.addrFrom, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("token: reading the daemon's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("token: %s", daemonError(resp.Status, answer))
	}
	var tr token.Response
	if err := json.Unmarshal(answer, &tr); err != nil || tr.TargetImage == "" || tr.ContainerToken == "" {
		return fmt.Errorf("token: the daemon answered %s with no token: %s", resp.Status, firstLine(answer))
	}
	var out bytes.Buffer
	if err := json.Indent(&out, answer, "", "  "); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	out.WriteByte('\n')
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return err
	}
	if tty {
		fmt.Fprintf(stderr, "docker run --rm %s\n", tr.TargetImage)
	}
	return nil
}

// daemonError makes one line of an OCI-style error answer, or of whatever
// else came back.
func daemonError(status string, body []byte) string {
	var oci struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &oci) == nil && len(oci.Errors) > 0 {
		var parts []string
		for _, e := range oci.Errors {
			parts = append(parts, strings.TrimPrefix(e.Code+": "+oneLine(e.Message), ": "))
		}
		return "the daemon refused the request: " + strings.Join(parts, "; ")
	}
	return "the daemon answered " + status + ": " + firstLine(body)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
