"""The seed notes' pipeline as a plain script, the way a user would copy it (with padding fixed).

Only two things differ from the notes: ``padding="same"`` on the Conv1D (the notes' stack does
not run on Keras 3 without it), and the CSV path, epochs and batch size come from the command
line so ``benchmarks/train.py`` can run the same data at every scale.

    python benchmarks/seed_script.py data/seed.csv 50 32
"""

import sys

import pandas as pd
from keras.layers import Conv1D, Dense, Flatten, MaxPooling1D
from keras.models import Sequential
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder, StandardScaler

path, epochs, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

data = pd.read_csv(path)
X = data.iloc[:, :-1].values
# the notes' `.values`; pandas 3 with pyarrow gives a text column as an Arrow array, which has
# no reshape, so the label is asked for as NumPy
Y = data.iloc[:, -1].to_numpy()

scaler = StandardScaler()
X = scaler.fit_transform(X)

encoder = OneHotEncoder()
Y = encoder.fit_transform(Y.reshape(-1, 1)).toarray()

X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.2, random_state=0)

model = Sequential()
model.add(Conv1D(filters=64, kernel_size=3, activation="relu", input_shape=(3, 1), padding="same"))
model.add(MaxPooling1D(pool_size=2))
model.add(Flatten())
model.add(Dense(units=64, activation="relu"))
model.add(Dense(units=3, activation="softmax"))

model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])

model.fit(X_train.reshape(-1, 3, 1), Y_train, batch_size=batch_size, epochs=epochs, verbose=1)

score = model.evaluate(X_test.reshape(-1, 3, 1), Y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
