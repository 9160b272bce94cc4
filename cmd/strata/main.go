// Command strata is the Strata broker and its tools. See `strata --help`.
package main

import (
	"os"

	"github.com/strata-log/strata/cmd/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
