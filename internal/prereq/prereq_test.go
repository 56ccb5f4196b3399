package prereq

import "testing"

func TestRequired(t *testing.T) {
	for _, tt := range []struct {
		ci, e2e string
		want    bool
	}{
		{"", "", false},
		{"true", "", true},
		{"1", "", true},
		{"false", "", false},
		{"0", "", false},
		{"", "require", true},
		{"false", "require", true},
		{"", "off", false},
	} {
		t.Setenv("CI", tt.ci)
		t.Setenv("TOWERREG_E2E", tt.e2e)
		if got := Required(); got != tt.want {
			t.Errorf("CI=%q TOWERREG_E2E=%q: Required() = %v, want %v", tt.ci, tt.e2e, got, tt.want)
		}
	}
}
