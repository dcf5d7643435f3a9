package kit

import (
	"bytes"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"errors"
	"fmt"
)

// BinaryPlatform reads the header of an executable and returns the platform it is for, as GOOS
// and GOARCH: ELF is linux, Mach-O darwin, PE windows; amd64 and arm64 only. It is how the tests
// know that a release archive or an image holds the binary its name promises, without running it.
func BinaryPlatform(b []byte) (goos, goarch string, err error) {
	var amd64, arm64 bool
	var machine any
	r := bytes.NewReader(b)
	if f, err := elf.NewFile(r); err == nil {
		goos, machine, amd64, arm64 = "linux", f.Machine, f.Machine == elf.EM_X86_64, f.Machine == elf.EM_AARCH64
	} else if f, err := macho.NewFile(r); err == nil {
		goos, machine, amd64, arm64 = "darwin", f.Cpu, f.Cpu == macho.CpuAmd64, f.Cpu == macho.CpuArm64
	} else if f, err := pe.NewFile(r); err == nil {
		goos, machine = "windows", f.Machine
		amd64, arm64 = f.Machine == pe.IMAGE_FILE_MACHINE_AMD64, f.Machine == pe.IMAGE_FILE_MACHINE_ARM64
	} else {
		return "", "", errors.New("not an ELF, Mach-O or PE executable")
	}
	switch {
	case amd64:
		return goos, "amd64", nil
	case arm64:
		return goos, "arm64", nil
	}
	return goos, "", fmt.Errorf("a %s executable for machine %v, neither amd64 nor arm64", goos, machine)
}
