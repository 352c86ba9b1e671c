module counterd/examples/go

go 1.19
