"""Prints the document counts of users, products and user_product_interactions in the
database of $MONGODB_URI (default database "recsys"), one line, space-separated.
"""
import os, pymongo
db = pymongo.MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=5000).get_default_database("recsys")
# collStats, not count_documents: FerretDB 1.x counts by decoding every document (minutes
# for the interactions), collStats asks SQLite (seconds)
def count(c):
    try:
        return int(db.command("collStats", c).get("count", 0))
    except pymongo.errors.OperationFailure:
        return 0
print(*(count(c) for c in ("users", "products", "user_product_interactions")))
