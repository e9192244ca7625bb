// The pod sandbox image's program (see main.go).
module mlpipeline-operator/tests/controlplane/go/pause

go 1.26.0
