"""Run many clients on one CPU: sample, train locally (vectorised), aggregate, evaluate — round after round.

Same-architecture clients train side by side as one batched computation: their parameters are
stacked along a new first axis, ``torch.func.vmap`` runs every client's forward pass at once and one
backward pass gives each its own gradient (a client with fewer steps left is masked). Models with buffers (BatchNorm) fall back to
one client after another with :func:`~lepton_kit.federated.client.client_update`; both paths draw
the same batches.

>>> import numpy as np, torch
>>> from lepton_kit.federated import FedAvg, partition_iid
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(400, 5)); y = (x[:, 0] > 0).astype(int)
>>> _ = torch.manual_seed(0); model = torch.nn.Linear(5, 2)
>>> history = simulate(model, (x, y), partition_iid(y, 20), FedAvg(lr=0.5), rounds=5, fraction=0.5,
...                    test=(x, y), progress=False)
>>> len(history.accuracy), history.accuracy[-1] > 0.9, rounds_to_target(history, 0.9) is not None
(5, True, True)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lepton_kit.federated.client import as_tensors, batch_schedule, client_update, steps_per_round
from lepton_kit.federated.strategy import ClientFailure, ClientResult


@dataclass
class History:
    """Per evaluated round: the round number, test accuracy and loss; plus wall time and failures."""

    rounds: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    clients: list = field(default_factory=list)      # per round: the clients whose results were aggregated
    failures: list = field(default_factory=list)     # per round: ClientFailure values
    seconds: float = 0.0


def rounds_to_target(history, target):
    """The first round whose test accuracy reached ``target``, or None.

    >>> rounds_to_target(History(rounds=[1, 2, 3], accuracy=[0.5, 0.91, 0.95]), 0.9)
    2
    """
    for server_round, accuracy in zip(history.rounds, history.accuracy):
        if accuracy >= target:
            return server_round
    return None


def evaluate_state(model, state, x, y):
    """Accuracy and mean cross-entropy of ``model`` with ``state`` on ``(x, y)``."""
    import torch
    import torch.nn.functional as F

    model.load_state_dict(state)
    model.eval()
    dtype = next(model.parameters()).dtype
    xt, yt = as_tensors(x, y, dtype)
    with torch.no_grad():
        logits = model(xt)
    return float((logits.argmax(1) == yt).double().mean()), float(F.cross_entropy(logits, yt))


def can_vectorize(model):
    """True when the model has no buffers (BatchNorm statistics cannot be stacked under vmap here)."""
    return not any(True for _ in model.buffers())


def train_vectorized(model, global_state, x, y, jobs, config):
    """Every job ``(client, rows, seed, max_steps)`` trained from ``global_state`` at once; returns states and losses."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, vmap

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    dtype = global_state[names[0]].dtype
    xt, yt = as_tensors(x, y, dtype)
    lr, mu, epochs, batch_size = config["lr"], config.get("mu", 0.0), config["epochs"], config["batch_size"]
    schedules = [[rows[b] for b in batch_schedule(len(rows), epochs=epochs, batch_size=batch_size, seed=seed,
                                                   max_steps=max_steps)] for _, rows, seed, max_steps in jobs]
    width = max(len(b) for s in schedules for b in s)
    steps = max(len(s) for s in schedules)
    index = np.zeros((steps, len(jobs), width), dtype=np.int64)
    weight = np.zeros((steps, len(jobs), width))
    for k, schedule in enumerate(schedules):
        for t, rows in enumerate(schedule):
            index[t, k, :len(rows)], weight[t, k, :len(rows)] = rows, 1.0
    index, weight = torch.from_numpy(index), torch.from_numpy(weight).to(dtype)
    active = (weight.sum(-1) > 0).to(dtype)                                   # (steps, clients)
    last = [steps_per_round(len(rows), epochs=1, batch_size=batch_size) for _, rows, _, _ in jobs]

    # vmap runs the forward pass of every client at once; plain autograd then gives each client its own
    # gradient (the clients' losses do not share parameters), about twice as fast as vmap over grad.
    forward = vmap(lambda p, xb: functional_call(model, p, (xb,)), randomness="different")
    anchor = {n: global_state[n] for n in names}
    params = {n: global_state[n].unsqueeze(0).repeat(len(jobs), *[1] * global_state[n].dim()).requires_grad_()
              for n in names}
    leaves = list(params.values())
    losses = torch.zeros(steps, len(jobs), dtype=torch.float64)
    model.train()
    for t in range(steps):
        logits = forward(params, xt[index[t]])
        per_example = F.cross_entropy(logits.flatten(0, 1), yt[index[t]].flatten(), reduction="none")
        loss = (per_example.view(len(jobs), width) * weight[t]).sum(1) / weight[t].sum(1).clamp_min(1.0)
        grads = torch.autograd.grad(loss.sum(), leaves)
        losses[t] = loss.detach().to(torch.float64)
        with torch.no_grad():
            for (n, p), g in zip(params.items(), grads):
                if mu:
                    g = g + mu * (p - anchor[n])
                p.sub_((lr * active[t]).view(-1, *[1] * (g.dim() - 1)) * g)
    states, client_losses = [], []
    for k, schedule in enumerate(schedules):
        state = {name: value.clone() for name, value in global_state.items()}
        state.update({n: params[n][k].detach().clone() for n in names})
        states.append(state)
        tail = range(max(0, len(schedule) - last[k]), len(schedule))
        sizes = [len(schedule[t]) for t in tail]
        client_losses.append(float(sum(losses[t, k] * s for t, s in zip(tail, sizes)) / max(sum(sizes), 1)))
    return states, client_losses


def simulate(model, data, parts, strategy, *, rounds, fraction=0.1, seed=0, test=None, eval_every=1,
             target=None, stragglers=0.0, dropout=0.0, vectorize="auto", progress=None):
    """Federated training of ``model`` over the clients ``parts`` (index arrays into ``data``) for ``rounds`` rounds.

    ``data``: ``(x, y)`` arrays, or a kit ``Dataset`` (its test split is then the default ``test``).
    Each round samples ``max(1, round(fraction * K))`` clients, asks ``strategy`` for their local training,
    trains them, and aggregates. ``dropout``: the chance that a sampled client sends nothing;
    ``stragglers``: the chance that it does only part of its steps (uniform; FedAvg drops it, FedProx keeps
    it). ``target``: stop once the test accuracy reaches it. Deterministic for a ``seed``.
    The model's current weights are the starting global state; it holds the final one afterwards.
    """
    import torch

    from lepton_kit.utils import progress_enabled

    if hasattr(data, "x_train"):
        test = test if test is not None else (data.x_test, data.y_test)
        data = (data.x_train, data.y_train)
    x, y = (np.asarray(a) for a in data)
    if not parts or any(len(p) == 0 for p in parts):
        raise ValueError("every client needs at least one example (an empty part was given)")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if vectorize == "auto":
        vectorize = can_vectorize(model)
    elif vectorize and not can_vectorize(model):
        raise ValueError("this model has buffers (BatchNorm?): vectorize=False trains its clients one by one")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history, started = History(), time.perf_counter()
    bar = range(1, rounds + 1)
    if progress_enabled(progress):
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="rounds", unit="round")
    num_clients = len(parts)
    for server_round in bar:
        rng = np.random.default_rng([seed, server_round])
        sampled = max(1, round(fraction * num_clients))
        chosen = np.sort(rng.choice(num_clients, sampled, replace=False))
        dropped = rng.random(sampled) < dropout
        slow = rng.random(sampled) < stragglers
        config = strategy.configure_round(server_round, sampled=sampled, num_clients=num_clients)
        jobs, failures = [], []
        for k, client in enumerate(chosen):
            full = steps_per_round(len(parts[client]), epochs=config["epochs"], batch_size=config["batch_size"])
            cut = int(rng.integers(1, full)) if slow[k] and full > 1 else None
            if dropped[k]:
                failures.append(ClientFailure(int(client), "dropped out"))
            elif cut is not None and not strategy.accept_partial:
                failures.append(ClientFailure(int(client), f"straggler: {cut} of {full} steps"))
            else:
                jobs.append((int(client), parts[client], (seed, server_round, int(client)), cut))
        results = []
        if jobs and vectorize:
            states, losses = train_vectorized(model, state, x, y, jobs, config)
            results = [ClientResult(c, s, len(rows), loss, cut is not None)
                       for (c, rows, _, cut), s, loss in zip(jobs, states, losses)]
        for client, rows, client_seed, cut in jobs if not vectorize else ():
            new, n, loss = client_update(model, state, x[rows], y[rows], epochs=config["epochs"],
                                         batch_size=config["batch_size"], lr=config["lr"],
                                         mu=config.get("mu", 0.0), seed=client_seed, max_steps=cut)
            results.append(ClientResult(client, new, n, loss, cut is not None))
        state = strategy.aggregate(server_round, state, results, failures)
        history.clients.append([r.client for r in results])
        history.failures.append(failures)
        if test is not None and (server_round % eval_every == 0 or server_round == rounds):
            accuracy, loss = evaluate_state(model, state, *test)
            history.rounds.append(server_round)
            history.accuracy.append(accuracy)
            history.loss.append(loss)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(accuracy=f"{accuracy:.3f}")
            if target is not None and accuracy >= target:
                break
    model.load_state_dict(state)
    history.seconds = time.perf_counter() - started
    if hasattr(bar, "close"):
        bar.close()
    return history
