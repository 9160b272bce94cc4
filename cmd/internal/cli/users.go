package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
)

const usersUsage = `Usage: strata users <command> [flags]

SCRAM users (Kafka's DescribeUserScramCredentials / AlterUserScramCredentials,
KIP-554), against --bootstrap-server:
  list                                            users with their mechanisms and iterations
  set-password --user U [--mechanism SCRAM-SHA-512] (--password-file F | --password P | the password on stdin)
                                                  create the user or change its password
  delete --user U [--mechanism SCRAM-SHA-512]     delete the user's credential of that mechanism

The password is salted here (PBKDF2, --iterations, default 8192); only the
salted form is sent, and the broker keeps only the keys derived from it.

Flags:
`

func runUsers(args []string, stdout, stderr io.Writer) error {
	var user, mechanism, password, passwordFile *string
	var iterations *int32
	sub, k, err := parseKafkaCommand("users", usersUsage, "list, set-password, delete", args, stderr, func(fs *pflag.FlagSet) {
		user = fs.String("user", "", "the user name (set-password, delete)")
		mechanism = fs.String("mechanism", "SCRAM-SHA-512", "SCRAM-SHA-256 or SCRAM-SHA-512 (set-password, delete)")
		password = fs.String("password", "", "the new password (set-password; visible to other local users in the process list: prefer --password-file or stdin)")
		passwordFile = fs.String("password-file", "", "file whose first line is the new password (set-password)")
		iterations = fs.Int32("iterations", 8192, "PBKDF2 iterations, 4096 to 16384 (set-password)")
	})
	if err != nil {
		return err
	}
	defer k.client.Close()
	var mech kadm.ScramMechanism
	switch strings.ToUpper(*mechanism) {
	case "SCRAM-SHA-256":
		mech = kadm.ScramSha256
	case "SCRAM-SHA-512":
		mech = kadm.ScramSha512
	default:
		return usageErrorf("--mechanism %q: SCRAM-SHA-256 or SCRAM-SHA-512", *mechanism)
	}
	ctx, cancel := k.context()
	defer cancel()
	switch sub {
	case "list":
		described, err := k.adm.DescribeUserSCRAMs(ctx)
		if err != nil {
			return err
		}
		if err := described.Error(); err != nil {
			return err
		}
		type row struct {
			User       string `json:"user"`
			Mechanism  string `json:"mechanism"`
			Iterations int32  `json:"iterations"`
		}
		var rows []row
		for _, d := range described.Sorted() {
			for _, c := range d.CredInfos {
				rows = append(rows, row{d.User, c.Mechanism.String(), c.Iterations})
			}
		}
		return k.emit(stdout, rows, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "USER\tMECHANISM\tITERATIONS")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", r.User, r.Mechanism, r.Iterations)
			}
		})
	case "set-password", "delete":
		if *user == "" {
			return usageErrorf("--user is required")
		}
		var altered kadm.AlteredUserSCRAMs
		if sub == "delete" {
			altered, err = k.adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: *user, Mechanism: mech}}, nil)
		} else {
			pw, perr := readPassword(*password, *passwordFile)
			if perr != nil {
				return perr
			}
			altered, err = k.adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: *user, Mechanism: mech, Iterations: *iterations, Password: pw}})
		}
		if err != nil {
			return err
		}
		if r := altered[*user]; r.Err != nil {
			return fmt.Errorf("user %s: %v %s", *user, r.Err, r.ErrMessage)
		}
		fmt.Fprintf(stdout, "%s: %s %s\n", *user, map[string]string{"delete": "deleted", "set-password": "password set"}[sub], mech)
		return nil
	}
	return usageErrorf("unknown subcommand %q (list, set-password, delete)", sub)
}

// readPassword takes the password from --password, --password-file or
// stdin (its first line), in that order; never empty.
func readPassword(password, file string) (string, error) {
	if password != "" && file != "" {
		return "", usageErrorf("give --password or --password-file, not both")
	}
	if password != "" {
		return password, nil
	}
	var r io.Reader = os.Stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", usageErrorf("--password-file: %v", err)
		}
		defer f.Close()
		r = f
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usageErrorf("empty password (give --password-file, or the password on stdin)")
	}
	return line, nil
}
