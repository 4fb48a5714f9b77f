# A small PyTorch training run: an MLP learns a synthetic regression task.
# Uses CUDA when available and says which device it used; logs "Loss" once per
# epoch (a series) and "Final Loss", and saves the weights to outputs/model.pt.
#
#     gpu_train.py [EPOCHS]
#
# `azureml.logging` is provided by labdeck.

import os
import sys
import time

import torch
from azureml.logging import get_azureml_logger
from torch import nn

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
STEPS_PER_EPOCH = 30
BATCH_SIZE = 256
FEATURES = 32

run_logger = get_azureml_logger()
torch.manual_seed(42)

if torch.cuda.is_available():
    device = torch.device("cuda")
    print(f"Using device: cuda ({torch.cuda.get_device_name(device)})")
else:
    device = torch.device("cpu")
    print("Using device: cpu")

# Synthetic task: y = sin(x . w1) + 0.5 * (x . w2)^2 + noise
generator = torch.Generator().manual_seed(0)
w1 = torch.randn(FEATURES, 1, generator=generator) / FEATURES**0.5
w2 = torch.randn(FEATURES, 1, generator=generator) / FEATURES**0.5
x_all = torch.randn(STEPS_PER_EPOCH * BATCH_SIZE, FEATURES, generator=generator)
noise = 0.05 * torch.randn(x_all.shape[0], 1, generator=generator)
y_all = torch.sin(x_all @ w1) + 0.5 * (x_all @ w2) ** 2 + noise
x_all, y_all = x_all.to(device), y_all.to(device)

model = nn.Sequential(
    nn.Linear(FEATURES, 128),
    nn.ReLU(),
    nn.Linear(128, 128),
    nn.ReLU(),
    nn.Linear(128, 1),
).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.MSELoss()

start = time.perf_counter()
for epoch in range(1, EPOCHS + 1):
    permutation = torch.randperm(x_all.shape[0], device=device)
    total = torch.zeros((), device=device)
    for step in range(STEPS_PER_EPOCH):
        idx = permutation[step * BATCH_SIZE : (step + 1) * BATCH_SIZE]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_all[idx]), y_all[idx])
        loss.backward()
        optimizer.step()
        total += loss.detach()
    epoch_loss = (total / STEPS_PER_EPOCH).item()
    print(f"epoch {epoch:3d}  loss {epoch_loss:.4f}")
    run_logger.log("Loss", epoch_loss)

with torch.no_grad():
    final_loss = loss_fn(model(x_all), y_all).item()
elapsed = time.perf_counter() - start
print(f"Final Loss is {final_loss:.4f} ({EPOCHS * STEPS_PER_EPOCH} steps in {elapsed:.2f}s)")
run_logger.log("Final Loss", final_loss)

torch.save(model.state_dict(), os.path.join("outputs", "model.pt"))
print("Saved outputs/model.pt")
