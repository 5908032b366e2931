// promshm through Go's cgo, with error objects and without
// runtime.LockOSThread: goroutines move between OS threads, so the
// thread-local promshm_last_error() could belong to another goroutine's
// failure; each goroutine's promshm_error cannot.
//
//	go build -o go_loader . && ./go_loader AREA_FILE OUT_FILE N [child]
//
// (CGO_CFLAGS=-I<include>, CGO_LDFLAGS=-L<dir> -lpromshm set by the runner.)
// Go cannot fork: the second process is this program again (`child`), which
// opens the area file. Then 16 goroutines fail calls at once, each checking
// its own error object. Prints `go ok ... ns_per_inc=X`.
package main

/*
#cgo LDFLAGS: -lpromshm
#include <stdlib.h>
#include "promshm.h"
*/
import "C"

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

func check(rc C.promshm_result, err *C.promshm_error, what string) {
	if rc != C.PROMSHM_RESULT_OK {
		fmt.Fprintf(os.Stderr, "go: %s failed: %d %s\n", what, rc, C.GoString(C.promshm_error_detail(err)))
		os.Exit(1)
	}
}

// cstrings returns a C array of C strings and a function freeing them.
func cstrings(list []string) (**C.char, func()) {
	arr := (**C.char)(C.malloc(C.size_t(len(list)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	s := unsafe.Slice(arr, len(list))
	for i, v := range list {
		s[i] = C.CString(v)
	}
	return arr, func() {
		for i := range list {
			C.free(unsafe.Pointer(s[i]))
		}
		C.free(unsafe.Pointer(arr))
	}
}

func main() {
	areaFile, outFile := os.Args[1], os.Args[2]
	n, _ := strconv.Atoi(os.Args[3])
	child := len(os.Args) > 4 && os.Args[4] == "child"
	err := C.promshm_error_new()
	path := C.CString(areaFile)
	var area *C.promshm_area
	if child {
		check(C.promshm_area_open_e(path, C.PROMSHM_OPEN_MODE_READ_WRITE, &area, err), err, "area_open")
	} else {
		check(C.promshm_area_create_e(path, nil, &area, err), err, "area_create")
	}
	var reg *C.promshm_registry
	check(C.promshm_registry_new_e(area, nil, nil, 0, &reg, err), err, "registry_new")
	labels, freeLabels := cstrings([]string{"lang"})
	name, help := C.CString("ffi_requests"), C.CString("Requests.")
	var counter, hist *C.promshm_family
	check(C.promshm_registry_counter_simple(reg, name, help, labels, 1, &counter, err), err, "counter")
	buckets := []C.double{0.1, 1.0}
	hname, hhelp := C.CString("ffi_latency"), C.CString("Latency.")
	check(C.promshm_registry_histogram_simple(reg, hname, hhelp, labels, 1, &buckets[0], 2, &hist, err), err, "histogram")
	series := func(f *C.promshm_family, value string) *C.promshm_series {
		values, free := cstrings([]string{value})
		defer free()
		var s *C.promshm_series
		check(C.promshm_family_labels_e(f, values, 1, &s, err), err, "labels")
		return s
	}
	c, h := series(counter, "go"), series(hist, "go")

	var cmd *exec.Cmd
	if !child {
		cmd = exec.Command(os.Args[0], areaFile, outFile, os.Args[3], "child")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if e := cmd.Start(); e != nil {
			fmt.Fprintln(os.Stderr, "go: start child:", e)
			os.Exit(1)
		}
	}
	for i := 0; i < n; i++ {
		C.promshm_counter_inc(c)
		C.promshm_histogram_observe(h, 0.5)
	}
	check(C.promshm_flush_e(err), err, "flush")
	if child {
		return
	}
	if e := cmd.Wait(); e != nil {
		fmt.Fprintln(os.Stderr, "go: child:", e)
		os.Exit(1)
	}

	// 16 goroutines fail at once, each with its own error object.
	var wg sync.WaitGroup
	wrong := make([]int, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			e := C.promshm_error_new()
			defer C.promshm_error_free(e)
			for i := 0; i < 1000; i++ {
				bad := C.CString(fmt.Sprintf("bad-%d-%d", g, i))
				var f *C.promshm_family
				rc := C.promshm_registry_counter_simple(reg, bad, nil, nil, 0, &f, e)
				C.free(unsafe.Pointer(bad))
				detail := C.GoString(C.promshm_error_detail(e))
				if rc != C.PROMSHM_RESULT_INVALID_METRIC_NAME || !strings.Contains(detail, fmt.Sprintf("\"bad-%d-%d\"", g, i)) {
					wrong[g]++
				}
				if i%100 == 0 {
					time.Sleep(time.Microsecond) // let the scheduler move goroutines
				}
			}
		}(g)
	}
	wg.Wait()
	mismatched := 0
	for _, w := range wrong {
		mismatched += w
	}
	if mismatched != 0 {
		fmt.Fprintf(os.Stderr, "go: %d of 16000 error details were not the goroutine's own\n", mismatched)
		os.Exit(1)
	}

	bench := series(counter, "go-bench")
	t0 := time.Now()
	for i := 0; i < n; i++ {
		C.promshm_counter_inc(bench)
	}
	ns := float64(time.Since(t0).Nanoseconds()) / float64(n)

	var text *C.char
	var length C.size_t
	check(C.promshm_area_render_alloc(area, C.PROMSHM_FORMAT_PROMETHEUS, &text, &length, err), err, "render_alloc")
	page := C.GoStringN(text, C.int(length))
	C.promshm_render_free(text)
	lines := strings.Split(page, "\n")
	for _, want := range []string{
		fmt.Sprintf("ffi_requests_total{lang=\"go\"} %d", 2*n),
		fmt.Sprintf("ffi_latency_count{lang=\"go\"} %d", 2*n),
	} {
		found := false
		for _, l := range lines {
			found = found || l == want
		}
		if !found {
			fmt.Fprintf(os.Stderr, "go: %s not in the page:\n%s", want, page)
			os.Exit(1)
		}
	}
	if e := os.WriteFile(outFile, []byte(page), 0o644); e != nil {
		fmt.Fprintln(os.Stderr, "go:", e)
		os.Exit(1)
	}
	for _, s := range []*C.promshm_series{c, h, bench} {
		C.promshm_series_free(s)
	}
	C.promshm_family_free(counter)
	C.promshm_family_free(hist)
	C.promshm_registry_free(reg)
	C.promshm_area_free(area)
	C.promshm_error_free(err)
	freeLabels()
	for _, p := range []*C.char{path, name, help, hname, hhelp} {
		C.free(unsafe.Pointer(p))
	}
	fmt.Printf("go ok counter=%d ns_per_inc=%.1f goroutine_errors=16000/16000\n", 2*n, ns)
}
