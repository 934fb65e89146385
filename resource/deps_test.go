package resource

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps this package importable by third-party APIs
// without the authorization server: it must not depend on fosite or on this
// module's server, storage or keys packages.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{"ory/fosite", "/authserver/authserver", "/storage", "/keys"}
	for dep := range strings.FieldsSeq(string(out)) {
		for _, f := range forbidden {
			if strings.Contains(dep, f) {
				t.Errorf("resource depends on %s (matches %q)", dep, f)
			}
		}
	}
}
