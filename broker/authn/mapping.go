package authn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// PrincipalMapping is Kafka's ssl.principal.mapping.rules: how the
// distinguished name of a client certificate's subject becomes the
// principal's name (--ssl-principal-mapping-rules). Rules are tried in
// order and the first that applies names the principal:
//
//	DEFAULT                      the distinguished name itself
//	RULE:pattern/replacement/    when pattern matches the whole name, the
//	RULE:pattern/replacement/L   replacement ($1, $2… are pattern's groups),
//	RULE:pattern/replacement/U   lower-cased (L) or upper-cased (U)
//
// Rules are separated by commas (a rule's pattern may hold commas too);
// "/" and "\" inside a pattern or replacement are escaped with "\". The
// name is the subject in RFC 2253 form, as Kafka's default gives it
// ("CN=alice,OU=eng,O=example"). Patterns are Go regular expressions
// (RE2), which accept the patterns Kafka's documentation shows. A
// certificate no rule applies to is refused (the connection is closed),
// as in Kafka; end the rules with DEFAULT to take every other name as it
// is.
type PrincipalMapping struct {
	rules []mappingRule
	text  string
}

type mappingRule struct {
	isDefault bool
	pattern   *regexp.Regexp // anchored: the whole name must match
	// replacement is in regexp.Expand's syntax (${1}), converted from
	// Java's ($1, \$).
	replacement string
	lower       bool
	upper       bool
}

// ErrNoMappingRule is returned (wrapped) for a name no rule applies to.
var ErrNoMappingRule = errors.New("authn: no ssl.principal.mapping.rules rule applies")

// ruleSplitter matches one rule at the start of the rest of the rules: DEFAULT, or
// RULE:pattern/replacement/ with an optional L or U; escapes (\x) may
// hide a "/" or a "," inside pattern and replacement.
var ruleSplitter = regexp.MustCompile(`^\s*(?:(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?))\s*(?:,|$)`)

// ParsePrincipalMapping parses Kafka's ssl.principal.mapping.rules; ""
// is DEFAULT.
func ParsePrincipalMapping(s string) (*PrincipalMapping, error) {
	m := &PrincipalMapping{text: strings.TrimSpace(s)}
	rest := m.text
	if rest == "" {
		rest = "DEFAULT"
	}
	for strings.TrimSpace(rest) != "" {
		match := ruleSplitter.FindStringSubmatch(rest)
		if match == nil {
			return nil, fmt.Errorf("ssl principal mapping rules: invalid rule at %q: want DEFAULT or RULE:pattern/replacement/[LU], comma-separated", rest)
		}
		rest = rest[len(match[0]):]
		if match[1] == "DEFAULT" {
			m.rules = append(m.rules, mappingRule{isDefault: true})
			continue
		}
		pattern, err := regexp.Compile(`^(?:` + match[2] + `)$`)
		if err != nil {
			return nil, fmt.Errorf("ssl principal mapping rules: pattern %q: %w", match[2], err)
		}
		m.rules = append(m.rules, mappingRule{
			pattern:     pattern,
			replacement: javaReplacement(match[3], pattern.NumSubexp()),
			lower:       match[4] == "L",
			upper:       match[4] == "U",
		})
	}
	return m, nil
}

// javaReplacement converts a Java Matcher.replaceAll replacement to
// regexp.Expand's template: $n refers to group n (as many digits as name
// an existing group, as Java reads them), a $n past the last group is
// literal (as Kafka escapes it), "\x" is x.
func javaReplacement(s string, groups int) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			if s[i] == '$' {
				b.WriteString("$$")
			} else {
				b.WriteByte(s[i])
			}
		case c == '$' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i + 2
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				if n, _ := strconv.Atoi(s[i+1 : j+1]); n > groups {
					break
				}
				j++
			}
			if n, _ := strconv.Atoi(s[i+1 : j]); n <= groups {
				b.WriteString("${" + s[i+1:j] + "}")
			} else {
				b.WriteString("$$" + s[i+1:j])
			}
			i = j - 1
		case c == '$':
			b.WriteString("$$")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Name maps a distinguished name to the principal's name.
func (m *PrincipalMapping) Name(dn string) (string, error) {
	for _, r := range m.rules {
		if r.isDefault {
			return dn, nil
		}
		match := r.pattern.FindStringSubmatchIndex(dn)
		if match == nil {
			continue
		}
		name := string(r.pattern.ExpandString(nil, r.replacement, dn, match))
		switch {
		case r.lower:
			name = strings.ToLower(name)
		case r.upper:
			name = strings.ToUpper(name)
		}
		return name, nil
	}
	return "", fmt.Errorf("%w to %q (rules %q)", ErrNoMappingRule, dn, m.text)
}

// String is the rules as given.
func (m *PrincipalMapping) String() string { return m.text }

// CertPrincipal is the principal of a verified client certificate: User
// and the subject's distinguished name mapped by mapping (nil: DEFAULT,
// the name itself), or Anonymous without a verified certificate. A
// subject no rule applies to is an error (ErrNoMappingRule): the
// connection is refused.
func CertPrincipal(state tls.ConnectionState, mapping *PrincipalMapping) (Principal, error) {
	if len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return Anonymous, nil
	}
	dn := state.PeerCertificates[0].Subject.String()
	if mapping == nil {
		return User(dn), nil
	}
	name, err := mapping.Name(dn)
	if err != nil {
		return Anonymous, err
	}
	return User(name), nil
}
