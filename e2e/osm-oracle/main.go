// Command osm-oracle answers, from OSM v1.2.4's own code, what OSM's sidecars would allow.
//
//	osm-oracle config [-seed N] FILE.yaml    the inbound Envoy config per workload and order, as JSON
//	osm-oracle serve [-workers N]            JSON lines: {"id","objects":[…],"requests":[…],"seed","explain"}
//	                                         in, one Result per line out, in input order
//
// See README.md for the formats.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/openservicemesh/osm/pkg/logger"
)

func main() {
	if err := logger.SetLogLevel("disabled"); err != nil {
		fmt.Fprintln(os.Stderr, "osm-oracle:", err)
		os.Exit(2)
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: osm-oracle config [-seed N] FILE.yaml | osm-oracle serve [-workers N]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "config":
		err = runConfig(os.Args[2:])
	case "serve":
		err = runServe(os.Args[2:], os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "osm-oracle:", err)
		os.Exit(1)
	}
}

func runConfig(args []string) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	seed := fs.Int64("seed", 1, "seed of the sampled TrafficTarget orders")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("config takes one YAML file (- for stdin)")
	}
	in := io.Reader(os.Stdin)
	if fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	objects, err := ReadYAMLStream(in)
	if err != nil {
		return err
	}
	result, err := Evaluate(objects, nil, Options{Seed: *seed, Explain: true})
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	return out.Encode(result)
}

// Job is one line of `serve` input.
type Job struct {
	ID       string            `json:"id"`
	Objects  []json.RawMessage `json:"objects"`
	Requests []Request         `json:"requests"`
	Seed     int64             `json:"seed"`
	Explain  bool              `json:"explain"`
}

func runJob(line []byte) *Result {
	var job Job
	if err := json.Unmarshal(line, &job); err != nil {
		return &Result{Error: "reading the job: " + err.Error()}
	}
	objects := &Objects{}
	for _, raw := range job.Objects {
		if err := objects.Add(raw); err != nil {
			return &Result{ID: job.ID, Error: err.Error()}
		}
	}
	result, err := Evaluate(objects, job.Requests, Options{Seed: job.Seed, Explain: job.Explain})
	if err != nil {
		return &Result{ID: job.ID, Error: err.Error()}
	}
	result.ID = job.ID
	return result
}

// runServe evaluates jobs concurrently (OSM's informers wait ~100 ms to sync, so one at a time
// would be slow) and writes results in input order.
func runServe(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	workers := fs.Int("workers", 16, "jobs evaluated at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type slot struct{ done chan *Result }
	queue := make(chan slot, *workers)
	jobs := make(chan struct {
		line []byte
		out  chan *Result
	})
	var wg sync.WaitGroup
	for i := 0; i < *workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.out <- runJob(j.line)
			}
		}()
	}
	writeErr := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(stdout)
		enc := json.NewEncoder(w)
		var err error
		for s := range queue {
			r := <-s.done
			if err == nil {
				err = enc.Encode(r)
			}
			if err == nil && len(queue) == 0 {
				err = w.Flush()
			}
		}
		if err == nil {
			err = w.Flush()
		}
		writeErr <- err
	}()
	scanner := bufio.NewScanner(stdin)
	scanner.Buffer(make([]byte, 1024*1024), 256*1024*1024)
	for scanner.Scan() {
		line := append([]byte(nil), scanner.Bytes()...)
		if len(line) == 0 {
			continue
		}
		s := slot{done: make(chan *Result, 1)}
		queue <- s
		jobs <- struct {
			line []byte
			out  chan *Result
		}{line, s.done}
	}
	close(jobs)
	close(queue)
	wg.Wait()
	if err := <-writeErr; err != nil {
		return err
	}
	return scanner.Err()
}
