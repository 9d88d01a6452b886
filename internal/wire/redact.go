package wire

import (
	"regexp"
	"strings"
)

// Redacted replaces the value of a credential header wherever a source
// is shown: dead letters, logs, status.
const Redacted = "[redacted]"

// credentialHeaders are the headers whose values are credentials,
// lower-cased; a name holding "token", "secret", "password" or "api-key"
// is one too.
var credentialHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true,
	"x-api-key": true, "x-auth-token": true, "api-key": true, "apikey": true,
}

// CredentialHeader reports whether the value of the header called name is
// a credential.
func CredentialHeader(name string) bool {
	n := strings.ToLower(name)
	if credentialHeaders[n] {
		return true
	}
	for _, part := range []string{"token", "secret", "password", "api-key", "apikey", "auth"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

// RedactHeaders returns headers with the value of every credential header
// replaced by Redacted, unless it only names secrets (${env:...}), which
// are not themselves secret. headers is not modified.
func RedactHeaders(headers map[string]string) map[string]string {
	var out map[string]string
	for k, v := range headers {
		if !CredentialHeader(k) || strings.Contains(v, "${") {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(headers))
			for k2, v2 := range headers {
				out[k2] = v2
			}
		}
		out[k] = Redacted
	}
	if out == nil {
		return headers
	}
	return out
}

// credentialJSON matches a credential header and its string value in JSON
// text, for sources that do not decode.
var credentialJSON = regexp.MustCompile(`(?i)("(?:[a-z0-9-]*(?:authorization|cookie|token|secret|password|api-?key|auth)[a-z0-9-]*)"\s*:\s*)"(?:[^"\\]|\\.)*"`)

// RedactJSON returns text with the string value of every credential header
// key in it replaced by Redacted: for a payload shown as it is.
func RedactJSON(text string) string {
	return credentialJSON.ReplaceAllString(text, `${1}"`+Redacted+`"`)
}
