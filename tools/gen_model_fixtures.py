#!/usr/bin/env python3
"""Writes the PyTorch fixtures tests/test_model.c compares against.

For each tiny model (GPT-2, Llama with GQA and an untied head) it writes
    tests/fixtures/model/<name>/model.safetensors   HF key names, as save_pretrained writes them
    tests/fixtures/model/<name>/config.json         HF config
    tests/fixtures/model/<name>/state.safetensors   the state file (format "eff-state", version 1):
        tokens [B, T] i32, targets [B, T] i32, logits [B, T, V] f32, loss [] f32,
        grad.<param name> for every parameter (f32), and
        adamw_losses [5] f32: the losses of 5 AdamW steps (lr 1e-2, betas (0.9, 0.95),
        eps 1e-8, weight decay 0.1) starting from these weights on the same batch.

Run: python3 tools/gen_model_fixtures.py   (needs torch, transformers, safetensors from PyPI)
The files are committed; tests never need Python.
"""
import json
import math
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "model")
B, T = 2, 11


def state_file(model, path, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (B, T), generator=g)
    targets = torch.randint(0, vocab, (B, T), generator=g)
    targets[1, 3] = -100  # one ignored position (PyTorch's ignore_index)
    model.zero_grad()
    out = model(input_ids=tokens)
    logits = out.logits.float()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=-100)
    loss.backward()
    state = {
        "tokens": tokens.to(torch.int32).contiguous(),
        "targets": targets.to(torch.int32).contiguous(),
        "logits": logits.detach().contiguous(),
        "loss": loss.detach().reshape(()).contiguous(),
    }
    for name, p in model.named_parameters():
        state["grad." + name] = p.grad.detach().float().contiguous()
    # 5 AdamW steps on a copy
    import copy
    m2 = copy.deepcopy(model)
    opt = torch.optim.AdamW(m2.parameters(), lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        lg = m2(input_ids=tokens).logits.float()
        l = torch.nn.functional.cross_entropy(lg.reshape(-1, vocab), targets.reshape(-1), ignore_index=-100)
        losses.append(l.item())
        l.backward()
        opt.step()
    state["adamw_losses"] = torch.tensor(losses, dtype=torch.float32)
    save_file(state, path, metadata={"format": "eff-state", "version": "1"})


def save_model(model, d):
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    # keep only what the test needs
    for f in os.listdir(d):
        if f not in ("model.safetensors", "config.json"):
            os.remove(os.path.join(d, f))


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=96, n_positions=32, n_embd=32, n_layer=2, n_head=4, n_inner=None,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     layer_norm_epsilon=1e-5, tie_word_embeddings=True)
    m = GPT2LMHeadModel(cfg).float().eval()
    with torch.no_grad():  # make biases and norms non-trivial so they are tested
        for n, p in m.named_parameters():
            if n.endswith(".bias") or ".ln_" in n or "ln_f" in n:
                p.add_(0.1 * torch.randn_like(p))
    d = os.path.join(OUT, "gpt2")
    save_model(m, d)
    state_file(m, os.path.join(d, "state.safetensors"), cfg.vocab_size, 11)


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(2)
    cfg = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=False, attention_bias=False, mlp_bias=False, hidden_act="silu")
    cfg._attn_implementation = "eager"
    m = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    d = os.path.join(OUT, "llama")
    save_model(m, d)
    state_file(m, os.path.join(d, "state.safetensors"), cfg.vocab_size, 12)


class Expert(torch.nn.Module):
    """SwiGLU expert with Mixtral's names: w1 gate, w2 down, w3 up."""

    def __init__(self, C, F):
        super().__init__()
        self.w1 = torch.nn.Linear(C, F, bias=False)
        self.w2 = torch.nn.Linear(F, C, bias=False)
        self.w3 = torch.nn.Linear(C, F, bias=False)

    def forward(self, x):
        return self.w2(torch.nn.functional.silu(self.w1(x)) * self.w3(x))


class MoE(torch.nn.Module):
    """The MoE FFN exactly as eff_model.h defines it (see eff__moe_forward):
    top-k of softmax(router) with ties to the lower index; gates renormalized over the
    k chosen (k = 1: the probability itself); capacity ceil(cf * N * k / E) filled slot by
    slot in token order; Switch aux loss E * sum_e f_e P_e."""

    def __init__(self, C, F, E, K, cf):
        super().__init__()
        self.gate = torch.nn.Linear(C, E, bias=False)
        self.experts = torch.nn.ModuleList([Expert(C, F) for _ in range(E)])
        self.E, self.K, self.cf = E, K, cf
        self.aux = None

    def forward(self, x, *args, **kwargs):
        B, T, C = x.shape
        xf = x.reshape(-1, C)
        N, E, K = xf.shape[0], self.E, self.K
        p = torch.softmax(self.gate(xf), dim=-1)
        pm = p.detach().clone()
        sel = []
        for _ in range(K):
            i = pm.argmax(dim=-1)  # first maximum: ties to the lower index
            sel.append(i)
            pm[torch.arange(N), i] = -float("inf")
        sel = torch.stack(sel, 1)
        psel = p.gather(1, sel)
        gate = psel if K == 1 else psel / psel.sum(1, keepdim=True)
        cap = math.ceil(self.cf * N * K / E) if self.cf > 0 else N * K
        fill = [0] * E
        keep = torch.zeros(N, K, dtype=torch.bool)
        for s in range(K):
            for n in range(N):
                e = int(sel[n, s])
                if fill[e] < cap:
                    fill[e] += 1
                    keep[n, s] = True
        y = torch.zeros_like(xf)
        for e in range(E):
            idx = ((sel == e) & keep).nonzero()
            if idx.shape[0] == 0:
                continue
            n, s = idx[:, 0], idx[:, 1]
            out = self.experts[e](xf[n])
            y = y.index_add(0, n, gate[n, s].unsqueeze(1) * out)
        counts = torch.stack([(sel == e).sum() for e in range(E)]).float()
        self.aux = E * ((counts / (N * K)) * p.mean(0)).sum()
        return y.reshape(B, T, C)


def moe():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(3)
    E, K, cf, coef = 4, 2, 1.0, 0.01
    cfg = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=False, hidden_act="silu")
    cfg._attn_implementation = "eager"
    m = LlamaForCausalLM(cfg).float().eval()
    for layer in m.model.layers:
        layer.mlp = MoE(32, 48, E, K, cf)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
            elif ".gate." in n:
                p.mul_(20.0)  # a confident router, so capacity drops happen
    moes = [layer.mlp for layer in m.model.layers]

    d = os.path.join(OUT, "moe")
    os.makedirs(d, exist_ok=True)
    rename = lambda n: n.replace(".mlp.", ".block_sparse_moe.")
    save_file({rename(n): p.detach().contiguous() for n, p in m.named_parameters()}, os.path.join(d, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": 96, "hidden_size": 32,
                   "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
                   "tie_word_embeddings": False, "num_local_experts": E, "num_experts_per_tok": K,
                   "router_aux_loss_coef": coef, "capacity_factor": cf}, f, indent=2)
    g = torch.Generator().manual_seed(13)
    tokens = torch.randint(0, 96, (B, T), generator=g)
    targets = torch.randint(0, 96, (B, T), generator=g)
    m.zero_grad()
    logits = m(input_ids=tokens).logits.float()
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 96), targets.reshape(-1))
    loss = ce + coef * sum(x.aux for x in moes)
    loss.backward()
    state = {"tokens": tokens.to(torch.int32), "targets": targets.to(torch.int32), "logits": logits.detach().contiguous(),
             "loss": loss.detach().reshape(()), "adamw_losses": torch.zeros(5)}
    for n, p in m.named_parameters():
        state["grad." + rename(n)] = p.grad.detach().float().contiguous()
    save_file(state, os.path.join(d, "state.safetensors"), metadata={"format": "eff-state", "version": "1", "no_adamw": "1"})




def llama2c_files():
    """tests/fixtures/model/llama2c/{model_v0.bin, model_v2.bin, ref.safetensors} from the HF
    Llama fixture: q/k un-permuted to Meta's interleaved RoPE layout (llama2.c's export does
    the opposite permutation), so transformers' logits are the reference for v0; for v2 the
    reference is transformers run on the int8-dequantized weights (group size 32)."""
    import struct
    import numpy as np
    from safetensors.torch import load_file
    from transformers import LlamaForCausalLM
    src = os.path.join(OUT, "llama")
    d = os.path.join(OUT, "llama2c")
    os.makedirs(d, exist_ok=True)
    m = LlamaForCausalLM.from_pretrained(src).float().eval()
    cfg = m.config
    sd = {k: v.detach().clone() for k, v in m.state_dict().items()}
    H, KV, C, L = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.hidden_size, cfg.num_hidden_layers
    hd = C // H

    def unpermute(w, nh):
        d1, d2 = w.shape
        return w.view(nh, 2, d1 // nh // 2, d2).transpose(1, 2).reshape(d1, d2)

    def q80(w, gs):
        w = w.float().reshape(-1, gs)
        scale = w.abs().max(dim=1).values / 127.0
        q = torch.round(w / scale[:, None]).to(torch.int8)
        return q, scale, (q.float() * scale[:, None]).reshape(-1)

    P = lambda i, n: f"model.layers.{i}.{n}.weight"
    order = [sd["model.embed_tokens.weight"]]
    wq = [unpermute(sd[P(i, "self_attn.q_proj")], H) for i in range(L)]
    wk = [unpermute(sd[P(i, "self_attn.k_proj")], KV) for i in range(L)]
    wv = [sd[P(i, "self_attn.v_proj")] for i in range(L)]
    wo = [sd[P(i, "self_attn.o_proj")] for i in range(L)]
    w1 = [sd[P(i, "mlp.gate_proj")] for i in range(L)]
    w2 = [sd[P(i, "mlp.down_proj")] for i in range(L)]
    w3 = [sd[P(i, "mlp.up_proj")] for i in range(L)]
    an = [sd[P(i, "input_layernorm")] for i in range(L)]
    fn = [sd[P(i, "post_attention_layernorm")] for i in range(L)]
    norm, out = sd["model.norm.weight"], sd["lm_head.weight"]
    hidden = w1[0].shape[0]
    seq = cfg.max_position_embeddings
    f32 = lambda f, t: f.write(t.detach().float().contiguous().numpy().astype("<f4").tobytes())
    # v0 (legacy): negative vocab = separate classifier
    with open(os.path.join(d, "model_v0.bin"), "wb") as f:
        f.write(struct.pack("7i", C, hidden, L, H, KV, -cfg.vocab_size, seq))
        f32(f, order[0])
        for t in an: f32(f, t)
        for t in wq: f32(f, t)
        for t in wk: f32(f, t)
        for t in wv: f32(f, t)
        for t in wo: f32(f, t)
        for t in fn: f32(f, t)
        for t in w1: f32(f, t)
        for t in w2: f32(f, t)
        for t in w3: f32(f, t)
        f32(f, norm)
        freqs = 1.0 / (10000.0 ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
        ang = torch.outer(torch.arange(seq).float(), freqs)
        f32(f, torch.cos(ang))
        f32(f, torch.sin(ang))
        f32(f, out)
    # v2: int8 groups; the reference runs the dequantized weights
    gs = 64
    while C % gs:
        gs //= 2
    quant = [order[0], *wq, *wk, *wv, *wo, *w1, *w2, *w3, out]
    deq = []
    with open(os.path.join(d, "model_v2.bin"), "wb") as f:
        f.write(struct.pack("I", 0x616B3432))
        f.write(struct.pack("i", 2))
        f.write(struct.pack("7i", C, hidden, L, H, KV, cfg.vocab_size, seq))
        f.write(struct.pack("B", 0))
        f.write(struct.pack("i", gs))
        f.write(b"\0" * (256 - f.tell()))
        for t in an: f32(f, t)
        for t in fn: f32(f, t)
        f32(f, norm)
        for w in quant:
            q, s, dq = q80(w, gs)
            f.write(q.numpy().astype(np.int8).tobytes())
            f32(f, s)
            deq.append(dq.reshape(w.shape))
    permute = lambda w, nh: w.view(nh, w.shape[0] // nh // 2, 2, w.shape[1]).transpose(1, 2).reshape(w.shape)
    with torch.no_grad():
        m.model.embed_tokens.weight.copy_(deq[0])
        for i in range(L):
            lay = m.model.layers[i]
            lay.self_attn.q_proj.weight.copy_(permute(deq[1 + i], H))
            lay.self_attn.k_proj.weight.copy_(permute(deq[1 + L + i], KV))
            lay.self_attn.v_proj.weight.copy_(deq[1 + 2 * L + i])
            lay.self_attn.o_proj.weight.copy_(deq[1 + 3 * L + i])
            lay.mlp.gate_proj.weight.copy_(deq[1 + 4 * L + i])
            lay.mlp.down_proj.weight.copy_(deq[1 + 5 * L + i])
            lay.mlp.up_proj.weight.copy_(deq[1 + 6 * L + i])
        m.lm_head.weight.copy_(deq[-1])
        state = load_file(os.path.join(src, "state.safetensors"))
        v2_logits = m(input_ids=state["tokens"].long()).logits.float().contiguous()
    save_file({"tokens": state["tokens"], "v0_logits": state["logits"], "v2_logits": v2_logits}, os.path.join(d, "ref.safetensors"),
              metadata={"format": "eff-state", "version": "1"})


if __name__ == "__main__":
    gpt2()
    llama()
    moe()
    llama2c_files()
    for name in ("gpt2", "llama", "moe", "llama2c"):
        d = os.path.join(OUT, name)
        print(name, {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))})
