module github.com/descent/descent/bindings/go

go 1.21
