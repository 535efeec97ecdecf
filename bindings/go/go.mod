module github.com/descent-ml/descent/bindings/go

go 1.21
