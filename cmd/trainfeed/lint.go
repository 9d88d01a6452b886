package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trainfeed/trainfeed/consumers/transform/spec"
	"github.com/trainfeed/trainfeed/producers"
)

func lintCmd() *cobra.Command {
	var sources, transforms []string
	cmd := &cobra.Command{
		Use:   "lint [--sources FILE]... [--transforms DIR|FILE]...",
		Short: "Check sources files and transform specs, printing FILE:LINE: problems (for CI)",
		Long: `lint reads each sources file and each transform spec (a file, or a folder of
<dataset>.yaml|.yml|.json files, as --transforms takes them) without running
anything, prints every problem as FILE:LINE: what (FILE: what when there is no
line), and exits 1 when it found any, 0 when all is well.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(sources) == 0 && len(transforms) == 0 {
				return fmt.Errorf("give --sources or --transforms to check")
			}
			w := cmd.OutOrStdout()
			problems, checked := 0, 0
			for _, path := range sources {
				n, c, err := lintSources(w, path)
				if err != nil {
					return err
				}
				problems, checked = problems+n, checked+c
			}
			for _, path := range transforms {
				n, c, err := lintSpecs(w, path)
				if err != nil {
					return err
				}
				problems, checked = problems+n, checked+c
			}
			if problems > 0 {
				fmt.Fprintf(w, "%d problems in %d sources and specs\n", problems, checked)
				return exitError{code: 1}
			}
			fmt.Fprintf(w, "ok: %d sources and specs\n", checked)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sources, "sources", nil, "a sources file to check (repeatable)")
	cmd.Flags().StringArrayVar(&transforms, "transforms", nil, "a transform spec, or a folder of them, to check (repeatable)")
	return cmd
}

// lintSources prints the bad lines of the sources file at path and
// returns how many there are and how many sources it read.
func lintSources(w io.Writer, path string) (problems, checked int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("--sources: %w", err)
	}
	defer f.Close()
	entries, err := producers.ReadSources(f)
	if err != nil {
		return 0, 0, fmt.Errorf("--sources %s: %w", path, err)
	}
	for _, e := range entries {
		if e.Err != nil {
			msg := strings.TrimPrefix(e.Err.Error(), fmt.Sprintf("line %d: ", e.Line))
			fmt.Fprintf(w, "%s:%d: %s\n", path, e.Line, msg)
			problems++
		}
	}
	return problems, len(entries), nil
}

// lintSpecs prints the problems of the spec at path, or of every spec in
// the folder at path, and returns how many there are and how many specs
// it read.
func lintSpecs(w io.Writer, path string) (problems, checked int, err error) {
	files := []string{path}
	if fi, err := os.Stat(path); err != nil {
		return 0, 0, fmt.Errorf("--transforms: %w", err)
	} else if fi.IsDir() {
		files = nil
		entries, err := os.ReadDir(path)
		if err != nil {
			return 0, 0, fmt.Errorf("--transforms: %w", err)
		}
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	for _, file := range files {
		checked++
		s, err := spec.LoadSpec(file)
		if err == nil {
			err = s.Validate()
		}
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "load spec "+file+": ")
			fmt.Fprintf(w, "%s: %s\n", file, msg)
			problems++
		}
	}
	return problems, checked, nil
}
