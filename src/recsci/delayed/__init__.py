"""Delayed feedback: conversion models trained on labels that may still flip (issue #5)."""
