"""lrt's ResNet50 written in PyTorch with torchvision's module names, so its
state_dict matches lrt's name for name: stems "cifar" (3x3 conv, stride 1, no
max-pool) and "imagenet" (torchvision's 7x7 conv + max-pool), blocks
[3, 4, 6, 3] of bottlenecks with the stride on the 3x3 conv, a linear head.
Used by tools/pytorch_reference.py and tools/bench_pytorch_resnet50.py."""
import torch.nn as nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp, width, stride):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(inp, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inp != out:
            self.downsample = nn.Sequential(nn.Conv2d(inp, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return self.relu(h + (self.downsample(x) if self.downsample is not None else x))


class ResNet50(nn.Module):
    def __init__(self, stem, classes=10):
        super().__init__()
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        inp = 64
        for stage, blocks in enumerate([3, 4, 6, 3]):
            width = 64 << stage
            layers = []
            for b in range(blocks):
                layers.append(Bottleneck(inp, width, 2 if stage > 0 and b == 0 else 1))
                inp = width * 4
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.fc = nn.Linear(inp, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))
