"""Model builders: LeNet-5, AlexNet, VGG-16, ResNet-18/50, MobileNetV2, with torchvision's layer names.

Each builder takes the layer namespace to build from: ``cnnkernels.nn`` (default) or ``torch.nn``,
so the benchmark can build the same architecture in PyTorch and copy the weights across with
``load_state_dict`` (the state_dict keys match).
"""
import numpy as np

from . import nn as cnn

_BLOCKS = {}


def _blocks(nn):
    """Residual block classes for a layer namespace (subclasses of its Module)."""
    if nn in _BLOCKS:
        return _BLOCKS[nn]

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, cin, width, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.act1 = nn.ReLU()
            self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.act_out = nn.ReLU(inplace=True)   # on the block's own sum, as torchvision
            self.downsample = downsample if downsample is not None else nn.Identity()

        def forward(self, x):
            out = self.act1(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return _residual(out, self.downsample(x), self.act_out)

        def prepare(self):
            _fold(self, [("conv1", "bn1", "act1"), ("conv2", "bn2", None)])
            if isinstance(self.downsample, cnn.Sequential):
                self.downsample.prepare()
            return self

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, width, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.act1 = nn.ReLU()
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.act2 = nn.ReLU()
            self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(width * 4)
            self.act_out = nn.ReLU(inplace=True)   # on the block's own sum, as torchvision
            self.downsample = downsample if downsample is not None else nn.Identity()

        def forward(self, x):
            out = self.act1(self.bn1(self.conv1(x)))
            out = self.act2(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return _residual(out, self.downsample(x), self.act_out)

        def prepare(self):
            _fold(self, [("conv1", "bn1", "act1"), ("conv2", "bn2", "act2"), ("conv3", "bn3", None)])
            if isinstance(self.downsample, cnn.Sequential):
                self.downsample.prepare()
            return self

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = []
            if expand != 1:
                layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
            layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)
            self.use_res = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class ResNet(nn.Module):
        def __init__(self, block, layers, num_classes=1000):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (count, width) in enumerate(zip(layers, (64, 128, 256, 512))):
                blocks = []
                for j in range(count):
                    stride = 2 if j == 0 and i > 0 else 1
                    down = None
                    if j == 0 and (stride != 1 or cin != width * block.expansion):
                        down = nn.Sequential(nn.Conv2d(cin, width * block.expansion, 1, stride, bias=False),
                                             nn.BatchNorm2d(width * block.expansion))
                    blocks.append(block(cin, width, stride, down))
                    cin = width * block.expansion
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.flatten(self.avgpool(x)))

        def prepare(self):
            _fold(self, [("conv1", "bn1", "relu")])
            for i in range(1, 5):
                getattr(self, f"layer{i}").prepare()
            return self

    _BLOCKS[nn] = (BasicBlock, Bottleneck, InvertedResidual, ResNet)
    return _BLOCKS[nn]


def _residual(out, identity, act):
    """act(out + identity) in place in out, the block's own array (as torchvision); one fused pass for
    cnnkernels arrays."""
    if isinstance(act, cnn.ReLU) and isinstance(out, np.ndarray):
        return cnn.add_relu_(out, identity)
    out += identity
    return act(out)


def _fold(module, triples):
    """In a cnnkernels module: fold conv/bn pairs and fuse the activation that follows (named attributes)."""
    for conv, bn, act in triples:
        c = getattr(module, conv)
        if not isinstance(getattr(module, bn), cnn.Identity):   # (prepared before: already folded)
            c.fold_batchnorm(getattr(module, bn))
            setattr(module, bn, cnn.Identity())
        c.prepare()
        if act is not None and not isinstance(getattr(module, act), cnn.Identity):
            c.activation = getattr(module, act).activation
            setattr(module, act, cnn.Identity())


def lenet5(nn=cnn):
    """LeNet-5 on 1x32x32 inputs (ReLU and max pooling, the usual modern variant)."""
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                         nn.ReLU(), nn.Linear(84, 10))



def _features_classifier(nn, features, avgpool, classifier):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features
            self.avgpool = avgpool
            self.flatten = nn.Flatten()
            self.classifier = classifier

        def forward(self, x):
            return self.classifier(self.flatten(self.avgpool(self.features(x))))

    return Net()


def alexnet(nn=cnn, num_classes=1000):
    features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    classifier = nn.Sequential(nn.Dropout(), nn.Linear(256 * 36, 4096), nn.ReLU(), nn.Dropout(),
                               nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, num_classes))
    return _features_classifier(nn, features, nn.AdaptiveAvgPool2d(6), classifier)


def vgg16(nn=cnn, num_classes=1000):
    layers, cin = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(),
                               nn.Dropout(), nn.Linear(4096, num_classes))
    return _features_classifier(nn, nn.Sequential(*layers), nn.AdaptiveAvgPool2d(7), classifier)


def resnet18(nn=cnn, num_classes=1000):
    BasicBlock, _, _, ResNet = _blocks(nn)
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


def resnet50(nn=cnn, num_classes=1000):
    _, Bottleneck, _, ResNet = _blocks(nn)
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)


def mobilenet_v2(nn=cnn, num_classes=1000):
    """MobileNetV2-style network (width 1.0): depthwise 3x3 blocks between 1x1 expansions and projections."""
    _, _, InvertedResidual, _ = _blocks(nn)
    layers = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())]
    cin = 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()))
    classifier = nn.Sequential(nn.Dropout(), nn.Linear(1280, num_classes))
    return _features_classifier(nn, nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), classifier)


MODELS = {"lenet5": (lenet5, (1, 1, 32, 32)), "alexnet": (alexnet, (1, 3, 224, 224)),
          "vgg16": (vgg16, (1, 3, 224, 224)), "resnet18": (resnet18, (1, 3, 224, 224)),
          "resnet50": (resnet50, (1, 3, 224, 224)), "mobilenet_v2": (mobilenet_v2, (1, 3, 224, 224))}
