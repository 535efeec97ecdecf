# The conformance scenario (tests/conformance/README.md) through Descent.jl's idiomatic API.
# usage: julia --project=bindings/julia bindings/julia/conformance.jl <output-dir>
using Descent

const NW = 48
const NB = 6

# lr(step) = 0.01 / (step + 1), in double, step converted from the library's uint64.
lr_schedule(step::UInt64) = 0.01 / (Float64(step) + 1.0)

function make(name)
    opt = if name == "muon+adamw"
        muon_adamw(muon="{\"learning_rate\": 0.02}", adamw="{\"learning_rate\": 0.01}")
    else
        o = Optimizer(name)
        configure!(o, name == "adamw" ? "{\"learning_rate\": 0.01, \"weight_decay\": 0.01}" :
                                        "{\"learning_rate\": 0.02, \"momentum\": 0.95}")
        o
    end
    # Row-major [8, 6] is the Julia 6×8 matrix (dimensions reversed, same memory).
    add_parameter!(opt, "layer.weight", Float32, (6, 8)) == 1 || error("weight index")
    add_parameter!(opt, "layer.bias", Float32, (NB,)) == 2 || error("bias index")
    set_schedule!(opt, lr_schedule)
    return opt
end

function steps!(opt, w, b, tw, tb, count)
    gw = similar(w)
    gb = similar(b)
    for _ in 1:count
        gw .= w .- tw  # float32 subtraction, elementwise
        gb .= b .- tb
        update!(opt, [w, b], [gw, gb])
    end
end

function run_config(dir, name)
    # i is the 0-based row-major index; column-major memory order is the same order.
    w = reshape(Float32[0.125f0 * Float32(i % 17) - 1.0f0 for i in 0:NW-1], 6, 8)
    tw = reshape(Float32[0.25f0 * Float32(i % 7) for i in 0:NW-1], 6, 8)
    b = Float32[0.25f0 * Float32(i) for i in 0:NB-1]
    tb = fill(-0.5f0, NB)
    path = joinpath(dir, name * ".state.safetensors")
    first = make(name)
    try
        steps!(first, w, b, tw, tb, 25)
        savestate(first, path)
    finally
        close(first)
    end
    second = make(name)
    try
        loadstate!(second, path)
        steps!(second, w, b, tw, tb, 25)
    finally
        close(second)
    end
    open(joinpath(dir, name * ".params.bin"), "w") do io
        write(io, htol.(vec(w)))
        write(io, htol.(b))
    end
end

function main(args)
    length(args) == 1 || (println(stderr, "usage: conformance.jl <output-dir>"); exit(2))
    try
        for name in ("adamw", "muon", "muon+adamw")
            run_config(args[1], name)
        end
    catch e
        println(stderr, "conformance: ", sprint(showerror, e))
        exit(1)
    end
end

main(ARGS)
