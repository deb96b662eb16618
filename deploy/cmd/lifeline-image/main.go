// Command lifeline-image builds Lifeline's container image without a Docker daemon (package image) and writes it
// as an OCI image layout, a tarball for `docker load` / `podman load`, or pushes it to a registry.
//
//	CGO_ENABLED=0 go build -trimpath -o /tmp/lifeline ./cmd/lifeline
//	cd deploy && go run ./cmd/lifeline-image --binary /tmp/lifeline --tarball /tmp/lifeline.tar --tag lifeline:dev
//
// deploy/build-image.sh does both steps.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/lifeline-sre/lifeline/deploy/image"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("lifeline-image", flag.ContinueOnError)
	var o image.Options
	var ociDir, tarPath, tag, push string
	fs.StringVar(&o.Binary, "binary", "", "the static lifeline binary (CGO_ENABLED=0 go build ./cmd/lifeline); required")
	fs.StringVar(&o.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of CA certificates to include")
	fs.StringVar(&o.Version, "version", "dev", "version label")
	fs.StringVar(&o.Source, "source", "", "org.opencontainers.image.source label")
	fs.StringVar(&ociDir, "oci-layout", "", "write an OCI image layout to this directory")
	fs.StringVar(&tarPath, "tarball", "", "write a tarball for docker load / podman load to this file")
	fs.StringVar(&tag, "tag", "lifeline:dev", "the image's name in the tarball")
	fs.StringVar(&push, "push", "", "push to this reference (registry/repo:tag), with the credentials of ~/.docker/config.json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.Binary == "" || ociDir == "" && tarPath == "" && push == "" {
		fmt.Fprintln(os.Stderr, "lifeline-image: --binary and at least one of --oci-layout, --tarball, --push are required")
		return 2
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lifeline-image: SOURCE_DATE_EPOCH %q: %v\n", s, err)
			return 2
		}
		o.Created = time.Unix(sec, 0)
	}
	img, err := image.Build(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifeline-image: %v\n", err)
		return 1
	}
	if err := image.Write(img, image.Outputs{OCILayout: ociDir, Tarball: tarPath, Tag: tag, Push: push}); err != nil {
		fmt.Fprintf(os.Stderr, "lifeline-image: %v\n", err)
		return 1
	}
	d, _ := img.Digest()
	fmt.Println(d)
	return 0
}
