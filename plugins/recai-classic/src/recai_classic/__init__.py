"""recai-classic: classic recommenders for recai (popularity, ItemKNN, ...).

The components are registered through :mod:`recai_classic.plugin`; use them by name in a recipe
(``use = "itemknn.v1"``) or directly::

    from recai_classic.itemknn import ItemKNN
    model = ItemKNN(neighbors=100)
"""

__version__ = "0.1.0"
