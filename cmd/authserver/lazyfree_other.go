//go:build !linux

package main

// lazyFree does nothing outside Linux: madvdontneed is a Linux setting.
func lazyFree() {}
