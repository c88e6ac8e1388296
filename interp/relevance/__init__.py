"""Deep Taylor decomposition: rules, a layer-to-rule map, and evaluation."""
