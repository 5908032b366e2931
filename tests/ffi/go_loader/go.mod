module promshm/tests/ffi/go_loader

go 1.19
