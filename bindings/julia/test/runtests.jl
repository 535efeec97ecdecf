# Tests of Descent.jl against the installed libdescent (DESCENT_LIBRARY or libdescent.so.1).
# usage: julia --project=bindings/julia -e 'using Pkg; Pkg.test()'   or   julia --project=... test/runtests.jl
using Descent
using Test

const D = Descent

@testset "Descent.jl" begin

@testset "library information" begin
    @test D.version() >= v"1.0.0"
    @test D.status_name(D.DESCENT_ERR_UNKNOWN_KEY) == "DESCENT_ERR_UNKNOWN_KEY"
    @test D.dtype_name(D.DESCENT_FLOAT32) == "float32"
    @test "muon" in kinds() && "multi" in kinds()
    @test length(kinds()) == 11 && kinds()[1] == "sgd" && kinds()[end] == "multi"
end

@testset "parameter_info: the library's declarations" begin
    opt = Optimizer("sgd"; learning_rate=0.5)
    @test add_parameter!(opt, "layers.0.weight", Float32, 2, 3) == 1
    @test add_parameter!(opt, "scale", Float64) == 2
    w = parameter_info(opt, 1)
    @test w isa ParameterInfo
    @test w.name == "layers.0.weight" && w.eltype === Float32 && w.dims == (2, 3)  # Julia dims
    s = parameter_info(opt, 2)
    @test s.name == "scale" && s.eltype === Float64 && s.dims == ()
    @test_throws DescentError add_parameter!(opt, "scale", Float32, 2)  # refused: no trace
    @test parameter_count(opt) == 2
    e = try
        parameter_info(opt, 3); nothing
    catch x
        x
    end
    @test e isa DescentError && e.status == D.DESCENT_ERR_INVALID_ARGUMENT
    @test_throws ArgumentError parameter_info(opt, 0)
    # the per-step dimension check reads the same declarations
    @test_throws DimensionMismatch update!(opt, 1, zeros(Float32, 3, 2), zeros(Float32, 3, 2))
    @test_throws DimensionMismatch update!(opt, ["layers.0.weight"], [zeros(Float32, 3, 2)],
                                           [zeros(Float32, 3, 2)])
    @test size(FlatBuffer(opt)[1]) == (2, 3)
    close(opt)
end

@testset "create: errors carry status and message" begin
    err = try
        Optimizer("adamz"); nothing
    catch e
        e
    end
    @test err isa DescentError
    @test err.status == D.DESCENT_ERR_UNKNOWN_KIND
    @test occursin("adamz", err.message)
    @test err.cause === nothing
    @test_throws ArgumentError Optimizer("ad\0amw")   # embedded NUL refused before the call
end

@testset "hyperparameters" begin
    opt = Optimizer("adamw")
    @test kind(opt) == "adamw"
    opt["learning_rate"] = 0.5
    @test opt["learning_rate"] == 0.5
    opt["betas"] = (0.8, 0.9)
    @test opt["betas"] == [0.8, 0.9]
    opt[:weight_decay] = 1           # an int where a double is expected
    @test opt["weight_decay"] == 1.0
    @test "betas" in hyperparameters(opt)
    e = try
        opt["no_such_key"] = 1.0; nothing
    catch x
        x
    end
    @test e isa DescentError && e.status == D.DESCENT_ERR_UNKNOWN_KEY
    @test occursin("no_such_key", e.message)
    @test opt["learning_rate"] == 0.5  # unchanged
    @test_throws DescentError configure!(opt, "{\"learning_rate\": 0.1, \"nope\": 1}")
    @test opt["learning_rate"] == 0.5  # all or nothing
    configure!(opt; learning_rate=0.25, eps=1e-6)
    @test opt["learning_rate"] == 0.25 && opt["eps"] == 1e-6
    m = Optimizer("muon")
    m["coefficients"] = "you"
    @test m["coefficients"] == "you"
    @test_throws DescentError (m["coefficients"] = "nonsense")
    a = Optimizer("adafactor")
    @test a["beta_1"] === nothing
    a["beta_1"] = 0.9
    @test a["beta_1"] == 0.9
    unset!(a, "beta_1")
    @test a["beta_1"] === nothing
    foreach(close, (opt, m, a))
end

@testset "sgd update by index, by name, all, flat: exact arithmetic" begin
    opt = Optimizer("sgd"; learning_rate=0.5)
    @test add_parameter!(opt, "w", Float32, 2, 3) == 1
    @test add_parameter!(opt, "b", zeros(Float64, 4)) == 2
    @test parameter_count(opt) == 2
    @test parameter_index(opt, "b") == 2
    w = Float32[1 2 3; 4 5 6]
    b = ones(Float64, 4)
    gw = fill(2f0, 2, 3)
    gb = fill(0.5, 4)
    update!(opt, 1, w, gw)
    @test w == Float32[0 1 2; 3 4 5]
    @test b == ones(4)                           # not given: untouched
    update!(opt, ["b"], [b], [gb])
    @test b == fill(0.75, 4)
    update!(opt, [w, b], [gw, gb])
    @test w == Float32[-1 0 1; 2 3 4] && b == fill(0.5, 4)
    @test state(opt, "step") == UInt64(3)
    # bad input: clear errors, nothing changes
    @test_throws DimensionMismatch update!(opt, 1, zeros(Float32, 3, 2), zeros(Float32, 3, 2))
    e = try
        update!(opt, 1, zeros(Float64, 2, 3), zeros(Float64, 2, 3)); nothing
    catch x
        x
    end
    @test e isa DescentError && e.status == D.DESCENT_ERR_DTYPE_MISMATCH
    @test_throws ArgumentError update!(opt, 1, view(zeros(Float32, 4, 3), 1:2, :), zeros(Float32, 2, 3))
    @test_throws ArgumentError update!(opt, 0, w, gw)
    @test state(opt, "step") == UInt64(3)
    # flat layout
    fp = FlatBuffer(opt)
    fg = FlatBuffer(opt)
    @test UInt(pointer(fp)) % 64 == 0
    @test size(fp[1]) == (2, 3) && eltype(fp[2]) == Float64
    fp[1] .= w; fp[2] .= b; fg[1] .= gw; fg[2] .= gb
    update!(opt, fp, fg)
    @test fp[1] == w .- 0.5f0 .* gw && fp[2] == b .- 0.5 .* gb
    @test_throws ArgumentError update!(opt, fp, fp)
    # views of a FlatBuffer are accepted by the per-index form too
    update!(opt, 1, fp[1], fg[1])
    @test fp[1] == w .- 1f0 .* gw
    close(opt)
    close(opt)                                   # idempotent
    @test !isopen(opt)
    @test_throws DescentError update!(opt, 1, w, gw)
end

@testset "state, save and load" begin
    function run_steps(opt, w, n)
        for _ in 1:n
            update!(opt, 1, w, w .- 1f0)
        end
    end
    a = Optimizer("adam"; learning_rate=0.01)
    add_parameter!(a, "w", Float32, 3, 2)
    w = Float32[i * 0.1 for i in 1:3, j in 1:2]
    run_steps(a, w, 5)
    @test "w.m" in state_keys(a) && "w.v" in state_keys(a)
    @test state_info(a, "w.m") == (Float32, (3, 2))
    m = state(a, "w.m")
    @test size(m) == (3, 2) && all(m .!= 0)
    bytes = savestate(a)
    b = Optimizer("adam"; learning_rate=0.01)
    add_parameter!(b, "w", Float32, 3, 2)
    loadstate!(b, bytes)
    @test state(b, "w.m") == m && state(b, "step") == UInt64(5)
    w2 = copy(w)
    run_steps(a, w, 3)
    run_steps(b, w2, 3)
    @test w == w2                                 # bit for bit
    path = tempname() * ".safetensors"
    savestate(a, path)
    c = Optimizer("adam"; learning_rate=0.01)
    add_parameter!(c, "w", Float32, 3, 2)
    loadstate!(c, path)
    @test state(c, "w.v") == state(a, "w.v")
    state!(c, "w.m", zeros(Float32, 3, 2))
    @test all(state(c, "w.m") .== 0)
    state!(c, "step", 7)
    @test state(c, "step") == UInt64(7)
    @test_throws DescentError loadstate!(c, UInt8[1, 2, 3])   # corrupt: refused
    @test state(c, "step") == UInt64(7)
    rm(path)
    foreach(close, (a, b, c))
end

@testset "schedules" begin
    @test schedule_value("{\"learning_rate\": {\"schedule\": \"exponential_decay\", \"init\": 0.1, \"decay_rate\": 0.5}}", 2) ≈ 0.025
    @test_throws DescentError schedule_value("nonsense:1", 0)
    opt = Optimizer("sgd"; learning_rate=1.0)
    add_parameter!(opt, "w", Float32, 2)
    calls = UInt64[]
    set_schedule!(opt) do step
        push!(calls, step)
        0.5 / (step + 1)
    end
    @test calls == [0]                            # evaluated once when attached
    w = ones(Float32, 2)
    update!(opt, 1, w, ones(Float32, 2))
    @test w == fill(0.5f0, 2)                     # update 1 uses schedule(0) = 0.5
    @test calls == [0, 0]
    # a throwing schedule fails the update, changes nothing, and keeps the exception
    ncalls = Ref(0)   # the attach evaluates it too (at the current step): fail from the 2nd call on
    set_schedule!(opt, step -> (ncalls[] += 1; ncalls[] >= 2 ? error("boom at $step") : 0.1))
    before = copy(w)
    e = try
        update!(opt, 1, w, ones(Float32, 2)); nothing
    catch x
        x
    end
    @test e isa DescentError
    @test e.status == D.DESCENT_ERR_CALLBACK
    @test occursin("boom at 1", e.message)
    @test e.cause isa CapturedException && e.cause.ex isa ErrorException
    @test w == before && state(opt, "step") == UInt64(1)
    # a schedule returning a non-number
    e2 = try
        set_schedule!(opt, step -> "fast"); nothing
    catch x
        x
    end
    @test e2 isa DescentError && e2.cause.ex isa ArgumentError
    # re-entrancy: changing the optimizer from inside its schedule is refused
    e3 = try
        set_schedule!(opt, step -> (opt["learning_rate"] = 0.3; 0.1))
        update!(opt, 1, w, ones(Float32, 2)); nothing
    catch x
        x
    end
    @test e3 isa DescentError && e3.status == D.DESCENT_ERR_INVALID_STATE
    # read-only calls inside are fine
    set_schedule!(opt, step -> opt["momentum"] + 0.1)
    update!(opt, 1, w, ones(Float32, 2))
    clear_schedule!(opt)
    set_schedule!(opt, "exponential_decay:0.1:0.9")
    close(opt)
end

@testset "multi groups and filters" begin
    multi = Optimizer("multi")
    @test add_group!(multi, "sgd"; learning_rate=0.1) == 1
    @test add_group!(multi, "adamw", "{\"learning_rate\": 0.01}") == 2
    @test group_count(multi) == 2
    seen = Tuple[]
    filter_callback!(multi, 1) do name, dims
        push!(seen, dims)
        length(dims) >= 2
    end
    add_parameter!(multi, "w", Float32, 4, 3)
    add_parameter!(multi, "b", Float32, 3)
    @test parameter_group(multi, "w") == 1
    @test parameter_group(multi, "b") == 2
    @test (4, 3) in seen                           # filters see the Julia dimensions
    g = group(multi, 2)
    g["learning_rate"] = 0.02
    @test g["learning_rate"] ≈ 0.02
    w = ones(Float32, 4, 3); b = ones(Float32, 3)
    update!(multi, [w, b], [w, b])
    @test "states.0.step" in state_keys(multi)
    close(g)                                       # borrowed: no effect
    @test isopen(multi)
    close(multi)
    @test !isopen(g)
    # a throwing filter
    m2 = Optimizer("multi")
    add_group!(m2, "sgd"; learning_rate=0.1)
    add_group!(m2, "sgd"; learning_rate=0.1)
    filter_callback!((name, dims) -> throw(KeyError(name)), m2, 1)
    add_parameter!(m2, "w", Float32, 2)
    e = try
        parameter_group(m2, "w"); nothing
    catch x
        x
    end
    @test e isa DescentError && e.cause.ex isa KeyError
    close(m2)
    mu = muon_adamw(muon=(learning_rate=0.02,), adamw=Dict("learning_rate" => 0.01))
    add_parameter!(mu, "layer.weight", Float32, 6, 8)
    add_parameter!(mu, "layer.bias", Float32, 6)
    @test parameter_group(mu, "layer.weight") == 1
    @test parameter_group(mu, "layer.bias") == 2
    close(mu)
end

@testset "column-major: Muon sees the transpose" begin
    # The same m×n matrix, once as a Julia m×n array (declared [n, m]) and once transposed
    # (a Julia n×m array, declared [m, n]). Orthogonalisation commutes with transposition, so
    # with lr_scale "none" the results are transposes of each other up to rounding.
    m, n = 5, 3
    W = Float32[sin(i + 2j) for i in 1:m, j in 1:n]
    G = Float32[cos(3i - j) for i in 1:m, j in 1:n]
    function step(W, G, scale)
        opt = Optimizer("muon"; learning_rate=0.1, lr_scale=scale)
        add_parameter!(opt, "w", W)
        P = copy(W)
        update!(opt, 1, P, G)
        close(opt)
        return P
    end
    A = step(W, G, "none")
    B = step(permutedims(W), permutedims(G), "none")
    @test isapprox(A, permutedims(B); rtol=1e-4, atol=1e-5)
    # MLX's scale sqrt(max(1, rows/cols)) reads the declared shape: it is NOT transpose-invariant
    Am = step(W, G, "mlx")            # declared [3, 5]: scale 1
    Bm = step(permutedims(W), permutedims(G), "mlx")  # declared [5, 3]: scale sqrt(5/3)
    @test isapprox(W .- Am, W .- A; rtol=1e-4, atol=1e-6)
    @test isapprox(permutedims(W) .- Bm, sqrt(5 / 3) .* (permutedims(W) .- B); rtol=1e-3, atol=1e-6)
end

@testset "column-major: Adafactor factors" begin
    opt = Optimizer("adafactor"; learning_rate=0.01)
    add_parameter!(opt, "w", Float32, 4, 7)       # Julia 4×7, declared [7, 4]
    init!(opt)
    @test state_info(opt, "w.exp_avg_sq_row") == (Float32, (7,))  # one per Julia column
    @test state_info(opt, "w.exp_avg_sq_col") == (Float32, (4,))  # one per Julia row
    close(opt)
end

@testset "clip_grad_norm!" begin
    g1 = Float32[3, 0]
    g2 = [4.0]
    total = clip_grad_norm!([g1, g2], 1.0)
    @test total ≈ 5.0
    @test g1[1] ≈ 3 / (5 + 1e-6) && g2[1] ≈ 4 / (5 + 1e-6)
    @test_throws DescentError clip_grad_norm!([g1], -1.0)
end

@testset "thread settings round-trip; bad counts throw and change nothing" begin
    before = num_threads()
    @test before >= 1
    set_num_threads!(3)
    @test num_threads() == 3
    @test_throws ArgumentError set_num_threads!(-1)
    err = try set_num_threads!(1 << 40); nothing catch e; e end
    @test err isa DescentError && err.status == Descent.DESCENT_ERR_OUT_OF_RANGE
    @test num_threads() == 3
    set_num_threads!(0)  # the default again
    @test num_threads() >= 1
    opt = Optimizer("adam")
    @test num_threads(opt) == 0
    @test set_num_threads!(opt, 2) === opt
    @test num_threads(opt) == 2
    @test_throws ArgumentError set_num_threads!(opt, -2)
    err = try set_num_threads!(opt, 1 << 40); nothing catch e; e end
    @test err isa DescentError && err.status == Descent.DESCENT_ERR_OUT_OF_RANGE
    @test occursin("at most", err.message)
    @test num_threads(opt) == 2
    close(opt)
end

@testset "finalizer frees without close" begin
    for _ in 1:100
        o = Optimizer("adam")
        add_parameter!(o, "w", Float32, 10)
        set_schedule!(o, s -> 0.01)
    end
    GC.gc(); GC.gc()
    @test true
end

@testset "half precision: Float16 and BF16 parameters" begin
    # BF16 conversions: round to nearest even; MLX's beta2 0.999 is 1.0 in bfloat16
    @test reinterpret(UInt16, BF16(1f0)) == 0x3f80
    @test reinterpret(UInt16, BF16(reinterpret(Float32, 0x3f808000))) == 0x3f80
    @test reinterpret(UInt16, BF16(reinterpret(Float32, 0x3f818000))) == 0x3f82
    @test reinterpret(UInt16, BF16(0.999f0)) == 0x3f80
    @test all(b -> isnan(Float32(b)) || BF16(Float32(b)) === b, reinterpret.(BF16, 0x0000:0xffff))
    # float32 policy (the default): one Adam step = the Float32 step on the widened values,
    # rounded once (Julia's own Float16 rounding and BF16 above give the expected bits)
    for T in (Float16, BF16)
        p0 = Float32[0.5 -1.25 3; 0.0078125 -2.5 1]
        g0 = Float32[0.125 -2 0; 0.0009765625 0.75 -0.375]
        o32 = Optimizer("adam"; learning_rate=0.01, bias_correction=true)
        oh = Optimizer("adam"; learning_rate=0.01, bias_correction=true)
        add_parameter!(o32, "w", Float32, 2, 3)
        add_parameter!(oh, "w", T, 2, 3)
        p32, ph, gh = copy(p0), T.(p0), T.(g0)
        @test Float32.(ph) == p0
        for _ in 1:3
            update!(o32, 1, p32, g0)
            update!(oh, 1, ph, gh)
            @test reinterpret.(UInt16, ph) == reinterpret.(UInt16, T.(p32))
            @test state(oh, "w.v") == state(o32, "w.v")          # Float32 state
            p32 .= Float32.(ph)
        end
        @test Float32.(ph) != p0
        @test parameter_info(oh, 1).eltype == T
        # "param": state in the parameter's dtype; SGD momentum from v = 0: v = g,
        # p = 1 - 0.5 g (exact)
        o = Optimizer("sgd"; learning_rate=0.5, momentum=0.9, state_precision="param")
        add_parameter!(o, "w", T, 2)
        p = T.(Float32[1, 1])
        g = T.(Float32[0.25, -0.25])
        update!(o, 1, p, g)
        @test Float32.(p) == Float32[0.875, 1.125]
        @test state_info(o, "w.v") == (T, (2,))
        @test reinterpret.(UInt16, state(o, "w.v")) == reinterpret.(UInt16, g)
        # a gradient of the other half type: refused, nothing changed
        other = T === Float16 ? BF16 : Float16
        e = try
            update!(o, 1, other.(Float32[1, 1]), other.(Float32[1, 1])); nothing
        catch x
            x
        end
        @test e isa DescentError && e.status == D.DESCENT_ERR_DTYPE_MISMATCH
        @test state(o, "step") == UInt64(1) && Float32.(p) == Float32[0.875, 1.125]
    end
end

end
