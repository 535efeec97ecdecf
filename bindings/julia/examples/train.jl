# A short runnable example: fit a linear model y = W x with AdamW and a Julia schedule.
# usage: DESCENT_LIBRARY=/path/to/libdescent.so.1 julia --project=bindings/julia bindings/julia/examples/train.jl
using Descent

W = zeros(Float32, 3, 4)                  # a Julia 3×4 matrix: declared to descent as [4, 3]
target = Float32[i + j for i in 1:3, j in 1:4]
Optimizer("adamw"; learning_rate=0.1, weight_decay=0.0) do opt
    add_parameter!(opt, "W", W)           # -> 1
    set_schedule!(step -> 0.1 / (1 + 0.01 * step), opt)
    G = similar(W)
    for _ in 1:300
        G .= W .- target                  # gradient of ½‖W - target‖²
        update!(opt, 1, W, G)
    end
    println("step = ", state(opt, "step"), ", lr = ", state(opt, "learning_rate"))
    println("max error = ", maximum(abs.(W .- target)))
end
