package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tower-reg/tower-reg/layer"
)

// packName is the file pack writes in --out.
const packName = "layer.tar.gz"

// packed is what pack prints: a layer as a container-token request takes
// it. The JSON names are a contract shared with the token API.
type packed struct {
	Location   string `json:"location"`
	GzipDigest string `json:"gzipDigest"`
	GzipSize   int64  `json:"gzipSize"`
	TarDigest  string `json:"tarDigest"`
}

func pack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("pack", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, "Usage: towerreg-dev pack [--layer DIR] [--out DIR] [--platform OS/ARCH]\n\n"+
			"Packs the layer directory's common tree (without .platforms), or with --platform\n"+
			"that platform's layer, into OUT/"+packName+"\n"+
			"and prints its {location, gzipDigest, gzipSize, tarDigest} JSON.\n\n")
		fl.PrintDefaults()
	}
	var (
		layerDir = fl.String("layer", "", "layer directory to pack (default: the built-in default layer)")
		outDir   = fl.String("out", ".", "directory to write "+packName+" in")
		platform = fl.String("platform", "", "pack the layer an image of this platform gets (os/arch[/variant]): its overlay merged over the common tree")
	)
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("pack: unexpected argument %q", fl.Arg(0))
	}
	src, _, err := layerSource(*layerDir, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if *platform != "" {
		p, err := v1.ParsePlatform(*platform)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return fmt.Errorf("pack: --platform %q is not os/arch[/variant]", *platform)
		}
		if src, _, err = layer.PlatformFS(src, *p); err != nil {
			return fmt.Errorf("pack: %w", err)
		}
	}
	out, err := filepath.Abs(*outDir)
	if err != nil {
		return fmt.Errorf("pack: --out: %w", err)
	}
	b, err := packFile(ctx, src, filepath.Join(out, packName))
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	loc := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(out, packName))}
	enc := json.NewEncoder(stdout)
	return enc.Encode(packed{
		Location:   loc.String(),
		GzipDigest: b.GzipDigest.String(),
		GzipSize:   b.GzipSize,
		TarDigest:  b.TarDigest.String(),
	})
}

// packFile packs src into dst atomically: a reader of dst (the token API
// fetching the location) sees the previous file or the new one whole,
// never a partial one.
func packFile(ctx context.Context, src fs.FS, dst string) (layer.Built, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+"-*")
	if err != nil {
		return layer.Built{}, err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	b, err := layer.Pack(ctx, src, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// CreateTemp makes the file 0600; the layer holds nothing secret
		// and other users' tools may read it.
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		return layer.Built{}, fmt.Errorf("write %s: %w", dst, err)
	}
	return b, nil
}
