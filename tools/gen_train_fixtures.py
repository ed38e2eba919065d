#!/usr/bin/env python3
"""Writes the PyTorch / PEFT fixtures tests/test_train.c compares against.

tests/fixtures/train/optim.safetensors  (format "eff-state", version 1), on the tiny Llama of
    tests/fixtures/model/llama and its batch (tokens, targets):
      adamw_losses [10], adamw_norms [10]  AdamW lr 1e-2 betas (0.9, 0.95) eps 1e-8 wd 0.1,
                                           clip_grad_norm_(1.0), warmup 3 + cosine to 0.1 at step 10
      sgd_losses [10]                      SGD lr 0.05 momentum 0.9 nesterov wd 0.01, linear decay to 0 at 10
      bf16_losses [10]                     mixed precision: 2-D weights rounded to bf16 for forward and
                                           backward, fp32 masters updated by AdamW (lr 1e-2, wd 0.1)
      accum_losses [10]                    AdamW as above without clipping/schedule, two micro-batches
                                           (row 0, row 1) of loss / 2 accumulated per step
      clip_norm [], clip_grad0 [..]        clip_grad_norm_(0.5) of the fixture's gradients: the total
                                           norm and the clipped gradient of model.embed_tokens.weight
tests/fixtures/train/lora_llama/, lora_gpt2/, dora_llama/   a PEFT adapter (save_pretrained:
    adapter_model.safetensors + adapter_config.json) with random A and B (init_lora_weights=False),
    and state.safetensors: tokens, targets, logits, loss, grad.<PEFT key> of every adapter tensor.
    GPT-2 targets c_attn / c_proj / c_fc with fan_in_fan_out=True.

Run: python3 tools/gen_train_fixtures.py            (torch, transformers, peft, safetensors)
     python3 tools/gen_train_fixtures.py --verify DIR
         loads an adapter written by eff (DIR/adapter_model.safetensors, adapter_config.json,
         base model path in DIR/base.txt) in PEFT and compares PEFT's logits with the ones eff
         wrote (DIR/logits.safetensors). test_train writes such a DIR to build/train_test/peft_llama.
The files are committed; tests never need Python.
"""
import copy
import json
import math
import os
import sys

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "tests", "fixtures", "model")
OUT = os.path.join(ROOT, "tests", "fixtures", "train")


def factor(kind, warmup, total, final, t):
    """eff_lr_schedule_factor for 1-based step t."""
    if warmup > 0 and t <= warmup:
        return t / warmup
    if kind == "constant" or total <= warmup:
        return 1.0
    p = min(max((t - warmup) / (total - warmup), 0.0), 1.0)
    if kind == "cosine":
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * p))
    return final + (1 - final) * (1 - p)


def ce(model, tokens, targets):
    lg = model(input_ids=tokens).logits.float()
    return torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets.reshape(-1), ignore_index=-100)


def load_llama():
    from transformers import LlamaForCausalLM
    m = LlamaForCausalLM.from_pretrained(os.path.join(MODEL, "llama"), attn_implementation="eager").float().eval()
    st = load_file(os.path.join(MODEL, "llama", "state.safetensors"))
    return m, st["tokens"].long(), st["targets"].long(), st


def optim_fixture():
    base, tokens, targets, st = load_llama()
    out = {}
    # AdamW + clipping + warmup/cosine
    m = copy.deepcopy(base)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: factor("cosine", 3, 10, 0.1, k + 1))
    losses, norms = [], []
    for _ in range(10):
        opt.zero_grad()
        l = ce(m, tokens, targets)
        losses.append(l.item())
        l.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)))
        opt.step()
        sch.step()
    out["adamw_losses"] = torch.tensor(losses)
    out["adamw_norms"] = torch.tensor(norms)
    # SGD momentum nesterov, linear decay
    m = copy.deepcopy(base)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: factor("linear", 0, 10, 0.0, k + 1))
    losses = []
    for _ in range(10):
        opt.zero_grad()
        l = ce(m, tokens, targets)
        losses.append(l.item())
        l.backward()
        opt.step()
        sch.step()
    out["sgd_losses"] = torch.tensor(losses)
    # mixed precision: bf16 2-D weights, fp32 masters
    m = copy.deepcopy(base)
    masters = [p.detach().clone() for p in m.parameters()]
    for mp in masters:
        mp.requires_grad_(True)
    opt = torch.optim.AdamW(masters, lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    losses = []
    for _ in range(10):
        with torch.no_grad():
            for p, mp in zip(m.parameters(), masters):
                p.copy_(mp.to(torch.bfloat16).float() if p.ndim == 2 else mp)
        m.zero_grad()
        l = ce(m, tokens, targets)
        losses.append(l.item())
        l.backward()
        for p, mp in zip(m.parameters(), masters):
            mp.grad = p.grad.detach().clone()
        opt.step()
    out["bf16_losses"] = torch.tensor(losses)
    # accumulation: two micro-batches of one row each
    m = copy.deepcopy(base)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        tot = 0.0
        for r in range(2):
            l = ce(m, tokens[r:r + 1], targets[r:r + 1]) / 2
            tot += l.item()
            l.backward()
        losses.append(tot)
        opt.step()
    out["accum_losses"] = torch.tensor(losses)
    # clip_grad_norm_ on the fixture's gradients
    m = copy.deepcopy(base)
    for n, p in m.named_parameters():
        p.grad = st["grad." + n].clone()
    out["clip_norm"] = torch.tensor(float(torch.nn.utils.clip_grad_norm_(m.parameters(), 0.5)))
    out["clip_grad0"] = m.model.embed_tokens.weight.grad.contiguous()
    save_file({k: v.float().contiguous() for k, v in out.items()}, os.path.join(OUT, "optim.safetensors"),
              metadata={"format": "eff-state", "version": "1"})


def peft_fixture(name, arch, targets, fan_in_fan_out, use_dora=False):
    from peft import LoraConfig, get_peft_model
    if arch == "llama":
        base, tokens, tgt, _ = load_llama()
    else:
        from transformers import GPT2LMHeadModel
        base = GPT2LMHeadModel.from_pretrained(os.path.join(MODEL, "gpt2"), attn_implementation="eager").float().eval()
        st = load_file(os.path.join(MODEL, "gpt2", "state.safetensors"))
        tokens, tgt = st["tokens"].long(), st["targets"].long()
    torch.manual_seed(7)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0, fan_in_fan_out=fan_in_fan_out,
                     init_lora_weights=False, use_dora=use_dora, task_type="CAUSAL_LM")
    m = get_peft_model(base, cfg)
    m.eval()
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    m.save_pretrained(d, safe_serialization=True)
    for f in os.listdir(d):
        if f not in ("adapter_model.safetensors", "adapter_config.json"):
            os.remove(os.path.join(d, f))
    cfg_path = os.path.join(d, "adapter_config.json")
    with open(cfg_path) as f:
        js = json.load(f)
    js["base_model_name_or_path"] = "tests/fixtures/model/" + arch   # not the generating machine's path
    with open(cfg_path, "w") as f:
        json.dump(js, f, indent=2, sort_keys=True)
    m.zero_grad()
    logits = m(input_ids=tokens).logits.float()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
    loss.backward()
    state = {"tokens": tokens.to(torch.int32), "targets": tgt.to(torch.int32), "logits": logits.detach().contiguous(),
             "loss": loss.detach().reshape(())}
    n_grads = 0
    for n, p in m.named_parameters():
        if p.requires_grad:
            key = n.replace(".lora_magnitude_vector.default.weight", ".lora_magnitude_vector").replace(".default", "")
            state["grad." + key] = p.grad.detach().float().contiguous()
            n_grads += 1
    save_file(state, os.path.join(d, "state.safetensors"), metadata={"format": "eff-state", "version": "1"})
    saved = load_file(os.path.join(d, "adapter_model.safetensors"))
    missing = [k[5:] for k in state if k.startswith("grad.") and k[5:] not in saved]
    assert not missing, missing
    print(name, n_grads, "adapter tensors, loss", loss.item())


def verify(d):
    """Loads an eff-written adapter in PEFT and compares logits."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base_dir = open(os.path.join(d, "base.txt")).read().strip()
    if not os.path.isabs(base_dir):
        base_dir = os.path.join(ROOT, base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="eager").float().eval()
    m = PeftModel.from_pretrained(base, d).eval()
    ref = load_file(os.path.join(d, "logits.safetensors"))
    with torch.no_grad():
        logits = m(input_ids=ref["tokens"].long()).logits.float()
    e = ((logits - ref["logits"]) ** 2).sum() / (ref["logits"] ** 2).sum()
    print(f"PEFT loaded the eff adapter in {d}: logits nmse {e.item():.3g}")
    return 0 if e.item() < 1e-8 else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--verify":
        sys.exit(verify(sys.argv[2]))
    os.makedirs(OUT, exist_ok=True)
    optim_fixture()
    peft_fixture("lora_llama", "llama", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], False)
    peft_fixture("lora_gpt2", "gpt2", ["c_attn", "c_proj", "c_fc"], True)
    peft_fixture("dora_llama", "llama", ["q_proj", "v_proj", "down_proj"], False, use_dora=True)
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            print(os.path.relpath(os.path.join(root, f), OUT), os.path.getsize(os.path.join(root, f)))
