"""Federated learning, small enough to read: partitioners, strategies, a vectorised simulator.

Light to import (torch is imported when training starts). Units 10 and 11 build on it.

>>> from lepton_kit.federated import FedAvg, partition_iid
>>> FedAvg(lr=0.05, epochs=5, batch_size=10).configure_round(1, sampled=10, num_clients=100)
{'lr': 0.05, 'epochs': 5, 'batch_size': 10, 'mu': 0.0}
"""
from lepton_kit.federated.client import batch_schedule, client_update
from lepton_kit.federated.partition import (label_histogram, partition_dirichlet, partition_iid, partition_shards,
                                            plot_partition)
from lepton_kit.federated.secagg import secure_sum
from lepton_kit.federated.simulate import History, evaluate_state, rounds_to_target, simulate
from lepton_kit.federated.strategy import (ClientFailure, ClientResult, DPFedAvg, FedAvg, FedMedian, FedProx, FedSGD,
                                           FedTrimmedAvg, SecAggFedAvg, weighted_average)

__all__ = ["ClientFailure", "ClientResult", "DPFedAvg", "FedAvg", "FedMedian", "FedProx", "FedSGD", "FedTrimmedAvg",
           "History", "SecAggFedAvg", "batch_schedule", "client_update", "evaluate_state", "label_histogram", "partition_dirichlet",
           "partition_iid", "partition_shards", "plot_partition", "rounds_to_target", "secure_sum", "simulate",
           "weighted_average"]
